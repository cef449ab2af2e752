// Sign-in: the admin key is checked against the API before it is kept (in sessionStorage only).
import type { Api } from "../api";
import { fill, h, message } from "../dom";
import { session } from "../session";

export async function signInPage(
  root: HTMLElement,
  clientFor: (key: string) => Api,
  notice: string | null,
  signedIn: () => void,
): Promise<void> {
  const input = h("input", {
    id: "admin-key",
    name: "admin-key",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    "aria-describedby": "admin-key-hint",
  });
  const status = h("div", { class: "form-status" });
  const button = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h(
    "form",
    { class: "card signin-card", novalidate: true },
    h("h1", null, h("span", { class: "logo", "aria-hidden": "true" }), "Meterway"),
    h("p", { class: "muted" }, "Usage, spend and API keys of your LLM gateway."),
    h(
      "div",
      { class: "field" },
      h("label", { for: "admin-key" }, "Admin key"),
      input,
      h("small", { class: "hint", id: "admin-key-hint" }, "An admin key (mw-admin-…). It is kept in this tab only and forgotten when you close it."),
    ),
    status,
    button,
  );
  if (notice) fill(status, message("info", notice));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) {
      fill(status, message("error", "Enter an admin key."));
      input.focus();
      return;
    }
    button.disabled = true;
    fill(status, h("p", { class: "muted", role: "status" }, "Checking the key…"));
    try {
      await clientFor(key).get("/api/balance");
      session.signIn(key);
      signedIn();
    } catch (error) {
      fill(status, message("error", `Sign-in failed: ${error instanceof Error ? error.message : String(error)}`));
      input.select();
      input.focus();
    } finally {
      button.disabled = false;
    }
  });
  fill(root, h("main", { id: "main", class: "signin" }, form));
  input.focus();
}
