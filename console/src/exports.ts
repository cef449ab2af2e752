// Export jobs from the console: start one, follow its progress, download the file it made.
import type { Api } from "./api";
import { fill, h, message } from "./dom";
import { count } from "./format";
import type { ExportStatus } from "./types";

export interface ExportRequest {
  kind: "requests" | "activity";
  format: "csv" | "pdf";
  start?: string;
  end?: string;
  model?: string | null;
  key?: string | null;
  group_by?: string;
  granularity?: string;
}

// Poll soon (small exports take a second), then back off; stop following after the deadline.
const FIRST_POLL_MS = 500;
const MAX_POLL_MS = 5_000;
const FOLLOW_FOR_MS = 10 * 60_000;

function download(url: string, filename: string): void {
  // The URL is presigned with Content-Disposition: attachment, so following it saves the file.
  const link = h("a", { href: url, download: filename, hidden: true });
  document.body.appendChild(link);
  link.click();
  link.remove();
}

/** A button that runs an export and a live region that tells how it goes. */
export function exportButton(
  api: Api,
  label: string,
  request: () => ExportRequest,
  onLeave: (cleanup: () => void) => void,
): { button: HTMLButtonElement; status: HTMLElement } {
  const status = h("div", { class: "export-status", "aria-live": "polite" });
  const button = h("button", { type: "button", class: "secondary" }, label);
  let timer: number | undefined;
  let left = false;
  onLeave(() => {
    left = true;
    window.clearTimeout(timer);
  });

  function finish(content: HTMLElement): void {
    button.disabled = false;
    fill(status, content);
  }

  /** The progress line: announced when the job's state changes, not at every row count. */
  function progress(state: string, rows: number | null): void {
    let line = status.querySelector<HTMLElement>(".progress");
    if (!line || line.dataset.state !== state) {
      line = h("p", { class: "progress", role: "status", "data-state": state }, h("progress", { "aria-label": "Export progress" }), ` ${state}… `, h("span", { class: "rows", "aria-hidden": "true" }));
      fill(status, line);
    }
    (line.querySelector(".rows") as HTMLElement).textContent = rows === null ? "" : `${count(rows)} rows so far`;
  }

  async function follow(id: string, delay: number, deadline: number): Promise<void> {
    if (left) return;
    let job: ExportStatus;
    try {
      job = await api.get<ExportStatus>(`/api/exports/${encodeURIComponent(id)}`);
    } catch (error) {
      finish(message("error", `Export failed: ${(error as Error).message}`));
      return;
    }
    if (left) return;
    if (job.status === "succeeded" && job.url) {
      download(job.url, job.filename);
      finish(
        h(
          "p",
          { class: "message success", role: "status" },
          `Exported ${count(job.rows)} ${job.format === "pdf" ? "requests into" : "rows to"} `,
          h("a", { href: job.url, download: job.filename }, job.filename),
          ". The link works until ",
          job.expires_at ? new Date(job.expires_at).toUTCString() : "it expires",
          ".",
        ),
      );
    } else if (job.status === "failed") {
      finish(message("error", `Export failed: ${job.error ?? "unknown error"}`));
    } else if (Date.now() > deadline) {
      finish(message("info", `The export is still running after ${FOLLOW_FOR_MS / 60_000} minutes (${count(job.rows)} rows so far). Try a narrower range, or start it again later.`));
    } else {
      progress(job.status === "queued" ? "Queued" : "Exporting", job.rows);
      timer = window.setTimeout(() => void follow(id, Math.min(delay * 1.5, MAX_POLL_MS), deadline), delay);
    }
  }

  button.addEventListener("click", async () => {
    button.disabled = true;
    progress("Starting the export", null);
    try {
      const job = await api.post<ExportStatus>("/api/exports", request());
      await follow(job.id, FIRST_POLL_MS, Date.now() + FOLLOW_FOR_MS);
    } catch (error) {
      finish(message("error", `Export failed: ${(error as Error).message}`));
    }
  });
  return { button, status };
}
