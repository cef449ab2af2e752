// API keys: create (the secret is shown once), rotate, disable, edit limits, and what each key spent.
import type { Api } from "../api";
import { loading, reloader, spendOfLimit, table } from "../components";
import type { PageContext } from "../context";
import { copy, openDialog, submitting } from "../dialog";
import { fill, field, h, message, options } from "../dom";
import { costSpan, count, relative, timestamp } from "../format";
import type { Activity, GroupCounters, Key, KeyWithSecret, Limits, Member } from "../types";

const PERIODS: [Limits["spend_period"], string][] = [
  ["none", "in all (lifetime budget)"],
  ["daily", "per day (UTC)"],
  ["weekly", "per week (from Monday)"],
  ["monthly", "per month (from the 1st)"],
];
const OVERLAPS: [string, string][] = [
  ["0", "Stop at once"],
  ["300", "5 minutes"],
  ["3600", "1 hour"],
  ["86400", "24 hours"],
];

function keyState(key: Key): string {
  if (key.disabled) return "disabled";
  if (key.valid_until && new Date(key.valid_until) <= new Date()) return "expired";
  return "active";
}

function limitsSummary(limits: Limits): string {
  const parts: string[] = [];
  if (limits.spend_limit_usd !== null) parts.push(`$${limits.spend_limit_usd} ${limits.spend_period === "none" ? "in all" : limits.spend_period}`);
  if (limits.requests_per_minute !== null) parts.push(`${count(limits.requests_per_minute)} req/min`);
  if (limits.tokens_per_minute !== null) parts.push(`${count(limits.tokens_per_minute)} tok/min`);
  if (limits.allowed_models) parts.push(`${limits.allowed_models.length} model${limits.allowed_models.length === 1 ? "" : "s"}`);
  return parts.length ? parts.join(" · ") : "No limits";
}

/** The limits part of a form: empty fields mean no limit of that kind. */
function limitsFields(limits: Limits | null): { element: HTMLElement; read: () => Record<string, unknown> | null } {
  const spend = h("input", { type: "text", inputmode: "decimal", name: "spend_limit_usd", placeholder: "No limit", value: limits?.spend_limit_usd ?? "" });
  const period = h("select", { name: "spend_period" }, options(PERIODS, limits?.spend_period ?? "none"));
  const rpm = h("input", { type: "number", min: "1", step: "1", name: "requests_per_minute", placeholder: "No limit", value: limits?.requests_per_minute ?? "" });
  const tpm = h("input", { type: "number", min: "1", step: "1", name: "tokens_per_minute", placeholder: "No limit", value: limits?.tokens_per_minute ?? "" });
  const models = h("textarea", { name: "allowed_models", rows: "2", placeholder: "Every model" }, (limits?.allowed_models ?? []).join("\n"));
  const element = h(
    "fieldset",
    { class: "limits" },
    h("legend", null, "Limits"),
    h("div", { class: "row" }, field("Spend limit (USD)", spend), field("Spend period", period)),
    h("div", { class: "row" }, field("Requests per minute", rpm), field("Tokens per minute", tpm)),
    field("Allowed models", models, "Model ids such as openai/gpt-4o-mini, one per line; empty allows every model."),
  );
  const read = (): Record<string, unknown> | null => {
    const result: Record<string, unknown> = {};
    if (spend.value.trim()) result.spend_limit_usd = spend.value.trim();
    if (spend.value.trim()) result.spend_period = period.value;
    if (rpm.value.trim()) result.requests_per_minute = Number(rpm.value);
    if (tpm.value.trim()) result.tokens_per_minute = Number(tpm.value);
    const allowed = models.value.split(/[\s,]+/).filter(Boolean);
    if (allowed.length) result.allowed_models = allowed;
    return Object.keys(result).length ? result : null;
  };
  return { element, read };
}

function showSecret(title: string, key: KeyWithSecret, note: string): Promise<void> {
  const input = h("input", { type: "text", readonly: true, value: key.secret, class: "secret", "aria-label": "Secret key" });
  const copied = h("span", { class: "copied", role: "status" });
  const copyButton = h("button", { type: "button", class: "secondary" }, "Copy");
  copyButton.addEventListener("click", async () => {
    copied.textContent = (await copy(key.secret, input)) ? "Copied." : "Selected: press Ctrl+C to copy.";
  });
  return new Promise((resolve) => {
    const { dialog, close } = openDialog(
      title,
      h("p", null, note),
      h("div", { class: "secret-row" }, input, copyButton),
      copied,
      h("p", { class: "message info", role: "note" }, "This is the only time the secret is shown. Meterway stores only its hash."),
      h("div", { class: "dialog-actions" }, h("button", { type: "button", class: "primary", onclick: () => close() }, "Done")),
    );
    dialog.addEventListener("close", () => resolve());
    input.select();
  });
}

function createKeyDialog(api: Api, members: Member[], done: (key: KeyWithSecret) => void): void {
  const name = h("input", { type: "text", name: "name", required: true, maxlength: "100", autocomplete: "off" });
  const member = h("select", { name: "member" }, options([["", "No member"], ...members.filter((m) => !m.disabled).map((m): [string, string] => [m.member_id, m.name ? `${m.name} (${m.member_id})` : m.member_id])], ""));
  const expiry = h("input", { type: "date", name: "valid_until" });
  const limits = limitsFields(null);
  const status = h("div");
  const form = h(
    "form",
    null,
    field("Name", name, "What the key is for, e.g. \"checkout service\"."),
    field("Member", member, "Whose key it is: disabling a member disables their keys."),
    field("Expires", expiry, "Optional; the key stops working at 00:00 UTC that day."),
    limits.element,
    status,
    h("div", { class: "dialog-actions" }, h("button", { type: "button", class: "ghost", onclick: () => close() }, "Cancel"), h("button", { type: "submit", class: "primary" }, "Create key")),
  );
  const { close } = openDialog("Create an API key", form);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void submitting(form, status, async () => {
      const body: Record<string, unknown> = { name: name.value.trim(), member: member.value || null, limits: limits.read() };
      if (expiry.value) body.valid_until = `${expiry.value}T00:00:00Z`;
      const created = await api.post<KeyWithSecret>("/api/keys", body);
      close();
      done(created);
    });
  });
  name.focus();
}

function editLimitsDialog(api: Api, key: Key, done: () => void): void {
  const limits = limitsFields(key.limits);
  const status = h("div");
  const form = h(
    "form",
    null,
    h("p", { class: "muted" }, "A change reaches every gateway instance within a minute."),
    limits.element,
    status,
    h("div", { class: "dialog-actions" }, h("button", { type: "button", class: "ghost", onclick: () => close() }, "Cancel"), h("button", { type: "submit", class: "primary" }, "Save limits")),
  );
  const { close } = openDialog(`Limits of “${key.name}”`, form);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void submitting(form, status, async () => {
      await api.patch(`/api/keys/${encodeURIComponent(key.id)}`, { limits: limits.read() });
      close();
      done();
    });
  });
}

function rotateDialog(api: Api, key: Key, done: (rotated: KeyWithSecret) => void): void {
  const overlap = h("select", { name: "overlap_seconds" }, options(OVERLAPS, "3600"));
  const status = h("div");
  const form = h(
    "form",
    null,
    h("p", null, "A new secret replaces the current one (", h("code", null, `${key.prefix}…`), ")."),
    field("Old secret keeps working for", overlap, "Time to roll the new secret out before the old one is refused."),
    status,
    h("div", { class: "dialog-actions" }, h("button", { type: "button", class: "ghost", onclick: () => close() }, "Cancel"), h("button", { type: "submit", class: "primary" }, "Rotate secret")),
  );
  const { close } = openDialog(`Rotate “${key.name}”`, form);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void submitting(form, status, async () => {
      const rotated = await api.post<KeyWithSecret>(`/api/keys/${encodeURIComponent(key.id)}/rotate`, { overlap_seconds: Number(overlap.value) });
      close();
      done(rotated);
    });
  });
}

export const keysPage = async (context: PageContext): Promise<void> => {
  const { api, main } = context;
  const status = h("div", { class: "page-errors" });
  const list = h("div", null, loading());
  const create = h("button", { type: "button", class: "primary" }, "Create key");
  fill(
    main,
    h("div", { class: "page-head" }, h("h1", null, "API keys"), h("div", { class: "actions" }, create)),
    h("p", { class: "muted" }, "API keys call the gateway (/v1); admin keys sign in here. Spend and requests are over the last 30 days unless marked to date."),
    status,
    h("section", { class: "card", "aria-labelledby": "keys-title" }, h("h2", { id: "keys-title", class: "sr-only" }, "Keys"), list),
  );

  let members: Member[] = [];

  async function refresh(): Promise<void> {
    const [keys, activity, memberList] = await Promise.all([
      api.get<{ data: Key[] }>("/api/keys"),
      api.get<Activity>("/api/activity", { period: "1mo", group_by: "key" }),
      api.get<{ data: Member[] }>("/api/members"),
    ]);
    if (!context.current()) return;
    members = memberList.data;
    const month = new Map<string, GroupCounters>(activity.groups.map((group) => [group.group, group]));
    const rows = keys.data.map((key) => {
      const stats = month.get(key.id);
      const state = keyState(key);
      const actions = h("div", { class: "row-actions", "data-key-id": key.id });
      if (key.kind === "api") {
        // Each button names its key, so a screen reader's list of buttons tells them apart; the
        // data-action lets focus come back to it once the list is redrawn.
        const button = (action: string, label: string, onclick: () => void): HTMLButtonElement =>
          h("button", { type: "button", class: "small", "data-action": action, "aria-label": `${label} ${key.name}`, onclick }, label);
        actions.append(
          button("rotate", "Rotate", () => rotateDialog(api, key, (rotated) => void showSecret("New secret", rotated, `The new secret of “${rotated.name}”.`).then(() => reload(key.id, "rotate")))),
          h("button", { type: "button", class: "small", "data-action": "limits", "aria-label": `Edit limits of ${key.name}`, onclick: () => editLimitsDialog(api, key, () => reload(key.id, "limits")) }, "Limits"),
          button(
            "toggle",
            key.disabled ? "Enable" : "Disable",
            () =>
              void act(
                () => api.patch(`/api/keys/${encodeURIComponent(key.id)}`, { disabled: !key.disabled }),
                key.disabled
                  ? `${key.name} enabled. A gateway that saw it disabled accepts it again within its key cache time (30 seconds by default).`
                  : `${key.name} disabled: the gateway refuses it from now on.`,
                key.id,
              ),
          ),
        );
      }
      return [
        h(
          "div",
          null,
          h("strong", null, key.name),
          h("span", { class: `badge state-${state}` }, state[0].toUpperCase() + state.slice(1)),
          h("div", { class: "muted small" }, h("code", null, `${key.prefix}…`)),
          h("div", { class: "muted small" }, key.kind === "admin" ? "admin key" : (key.member ?? "no member")),
        ),
        count(stats?.requests ?? 0),
        count(stats?.total_tokens ?? 0),
        costSpan(stats?.cost ?? "0"),
        costSpan(key.spend_to_date),
        h("span", { title: key.last_used_at ? timestamp(key.last_used_at) : "" }, relative(key.last_used_at)),
        h(
          "span",
          { class: "small" },
          key.kind === "api" ? limitsSummary(key.limits) : "—",
          key.limits.spend_limit_usd !== null && key.spent_this_period !== null ? spendOfLimit(key.spent_this_period, key.limits.spend_limit_usd, key.limits.spend_period, null) : null,
          key.valid_until ? h("div", { class: "muted small" }, `Expires ${timestamp(key.valid_until)}`) : null,
        ),
        actions,
      ];
    });
    fill(
      list,
      table(
        "API and admin keys",
        [
          { label: "Key" },
          { label: "Requests (30 d)", numeric: true },
          { label: "Tokens (30 d)", numeric: true },
          { label: "Spend (30 d)", numeric: true },
          { label: "Spend to date", numeric: true },
          { label: "Last used" },
          { label: "Limits" },
          { label: "Actions" },
        ],
        rows,
        "No keys yet.",
      ),
    );
  }

  const reload = reloader(refresh, list, status, "data-key-id");

  async function act(action: () => Promise<unknown>, done: string, keyId: string): Promise<void> {
    try {
      await action();
      fill(status, message("success", done));
      reload(keyId, "toggle");
    } catch (error) {
      fill(status, message("error", (error as Error).message));
    }
  }

  create.addEventListener("click", () =>
    createKeyDialog(api, members, (created) => {
      fill(status, message("success", `Key “${created.name}” created.`));
      void showSecret("Your new API key", created, `Use it as the API key of an OpenAI or Anthropic SDK pointed at this gateway.`).then(() => reload(created.id, "rotate"));
    }),
  );
  await refresh();
};
