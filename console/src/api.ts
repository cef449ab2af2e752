// The management API client: every call carries the admin key; every failure becomes an ApiError
// whose message is the API's own (the documented error envelope) or says what went wrong.

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

type Query = Record<string, string | number | null | undefined>;

export interface Api {
  get<T>(path: string, query?: Query): Promise<T>;
  post<T>(path: string, body?: unknown): Promise<T>;
  patch<T>(path: string, body: unknown): Promise<T>;
  delete(path: string): Promise<void>;
}

export function queryString(query: Query = {}): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== null && value !== undefined && value !== "") params.set(name, String(value));
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

async function failure(response: Response): Promise<ApiError> {
  const text = await response.text();
  try {
    const error = (JSON.parse(text) as { error?: { message?: string; code?: string } }).error;
    if (error?.message) return new ApiError(error.message, response.status, error.code ?? null);
  } catch {
    // Not the envelope (a proxy or gateway answered): fall through to the status line.
  }
  return new ApiError(`The management API answered ${response.status} ${response.statusText}.`.trim(), response.status);
}

/** A client for the API at `base` ("" for the console's own origin) with the key `secret()` gives. */
export function createApi(base: string, secret: () => string | null, onUnauthorized: (error: ApiError) => void): Api {
  async function call<T>(method: string, path: string, query?: Query, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { Accept: "application/json" };
    const key = secret();
    if (key) headers.Authorization = `Bearer ${key}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response: Response;
    try {
      response = await fetch(`${base}${path}${queryString(query)}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "omit",
      });
    } catch {
      throw new ApiError(`Cannot reach the management API${base ? ` at ${base}` : ""}. Check your connection.`, 0);
    }
    if (!response.ok) {
      const error = await failure(response);
      if (response.status === 401) onUnauthorized(error);
      throw error;
    }
    if (response.status === 204) return undefined as T;
    if (!(response.headers.get("content-type") ?? "").includes("json")) {
      throw new ApiError(`${base || "This site"}${path} answered with a page, not the management API: check apiBase in config.json.`, response.status);
    }
    return (await response.json()) as T;
  }
  return {
    get: (path, query) => call("GET", path, query),
    post: (path, body) => call("POST", path, undefined, body),
    patch: (path, body) => call("PATCH", path, undefined, body),
    delete: (path) => call("DELETE", path),
  };
}

/** Where the API is: `/config.json`'s `apiBase` when the console is hosted apart from it. */
export async function apiBase(): Promise<string> {
  try {
    const response = await fetch("/config.json", { cache: "no-store" });
    if (!response.ok) return "";
    const config = (await response.json()) as { apiBase?: string };
    return (config.apiBase ?? "").replace(/\/+$/, "");
  } catch {
    return "";
  }
}
