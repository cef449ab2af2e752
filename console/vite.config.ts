import { defineConfig } from "vite";

// `npm run dev` serves the console with hot reload and sends /api to a running `make dev` stack.
const stack = process.env.MW_STACK_URL ?? "http://127.0.0.1:3000";

export default defineConfig({
  build: { outDir: "dist", emptyOutDir: true, sourcemap: true, chunkSizeWarningLimit: 400 },
  server: { proxy: { "/api": stack } },
});
