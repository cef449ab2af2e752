import type { Api } from "./api";

/** What a page gets: the API, where to draw, and a way to release charts and timers on leaving. */
export interface PageContext {
  api: Api;
  main: HTMLElement;
  params: URLSearchParams;
  navigate(path: string, options?: { replace?: boolean }): void;
  onLeave(cleanup: () => void): void;
  /** False once the user has moved to another page: late answers must not draw over it. */
  current(): boolean;
}

export type Page = (context: PageContext) => Promise<void>;
