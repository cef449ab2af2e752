// Members: the people keys belong to. Add, rename, disable or enable them, give them a budget that
// all their keys share, and see their keys and what they spent over 30 days.
import type { Api } from "../api";
import { loading, reloader, spendOfLimit, table } from "../components";
import type { PageContext } from "../context";
import { openDialog, submitting } from "../dialog";
import { fill, field, h, message, options } from "../dom";
import { costSpan, count } from "../format";
import type { Activity, GroupCounters, Key, Member, MemberBudget } from "../types";

const PERIODS: [MemberBudget["spend_period"], string][] = [
  ["monthly", "per month (from the 1st)"],
  ["weekly", "per week (from Monday)"],
  ["daily", "per day (UTC)"],
  ["none", "in all (lifetime budget)"],
];

function memberName(member: Member): string {
  return member.name ?? member.member_id;
}


function addMemberDialog(api: Api, done: (member: Member) => void): void {
  const id = h("input", { type: "text", name: "member_id", required: true, maxlength: "100", autocomplete: "off", placeholder: "alice@example.com" });
  const name = h("input", { type: "text", name: "name", maxlength: "200", autocomplete: "off" });
  const status = h("div");
  const form = h(
    "form",
    null,
    field("Member id", id, "Usually their email; case does not matter."),
    field("Name", name, "Optional: how the console shows them."),
    status,
    h("div", { class: "dialog-actions" }, h("button", { type: "button", class: "ghost", onclick: () => close() }, "Cancel"), h("button", { type: "submit", class: "primary" }, "Add member")),
  );
  const { close } = openDialog("Add a member", form);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void submitting(form, status, async () => {
      const member = await api.post<Member>("/api/members", { member_id: id.value.trim(), name: name.value.trim() || null });
      close();
      done(member);
    });
  });
  id.focus();
}

function renameDialog(api: Api, member: Member, done: () => void): void {
  const name = h("input", { type: "text", name: "name", maxlength: "200", autocomplete: "off", value: member.name ?? "" });
  const status = h("div");
  const form = h(
    "form",
    null,
    field("Name", name, "Empty shows the member id instead."),
    status,
    h("div", { class: "dialog-actions" }, h("button", { type: "button", class: "ghost", onclick: () => close() }, "Cancel"), h("button", { type: "submit", class: "primary" }, "Save name")),
  );
  const { close } = openDialog(`Rename ${member.member_id}`, form);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void submitting(form, status, async () => {
      await api.patch(`/api/members/${encodeURIComponent(member.member_id)}`, { name: name.value.trim() || null });
      close();
      done();
    });
  });
  name.focus();
}

function budgetDialog(api: Api, member: Member, done: () => void): void {
  const limit = h("input", { type: "text", inputmode: "decimal", name: "spend_limit_usd", placeholder: "No budget", value: member.budget?.spend_limit_usd ?? "" });
  const period = h("select", { name: "spend_period" }, options(PERIODS, member.budget?.spend_period ?? "monthly"));
  const status = h("div");
  const form = h(
    "form",
    null,
    h("p", { class: "muted" }, "What all of this member's keys may spend together, counted from the start of the period (their spend so far in it included). Requests past it are refused with a 402, like a key's own limit, within a minute on every gateway instance."),
    h("div", { class: "row" }, field("Budget (USD)", limit, "Empty removes the budget."), field("Period", period)),
    status,
    h("div", { class: "dialog-actions" }, h("button", { type: "button", class: "ghost", onclick: () => close() }, "Cancel"), h("button", { type: "submit", class: "primary" }, "Save budget")),
  );
  const { close } = openDialog(`Budget of ${memberName(member)}`, form);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void submitting(form, status, async () => {
      const budget = limit.value.trim() ? { spend_limit_usd: limit.value.trim(), spend_period: period.value } : null;
      await api.patch(`/api/members/${encodeURIComponent(member.member_id)}`, { budget });
      close();
      done();
    });
  });
  limit.focus();
}

export const membersPage = async (context: PageContext): Promise<void> => {
  const { api, main } = context;
  const status = h("div", { class: "page-errors" });
  const list = h("div", null, loading());
  const add = h("button", { type: "button", class: "primary" }, "Add member");
  fill(
    main,
    h("div", { class: "page-head" }, h("h1", null, "Members"), h("div", { class: "actions" }, add)),
    h("p", { class: "muted" }, "The people API keys belong to. Disabling a member disables all their keys; a budget caps what their keys spend together. Requests and spend are over the last 30 days."),
    status,
    h("section", { class: "card", "aria-labelledby": "members-title" }, h("h2", { id: "members-title", class: "sr-only" }, "Members"), list),
  );

  async function refresh(): Promise<void> {
    const [members, keys, activity] = await Promise.all([
      api.get<{ data: Member[] }>("/api/members"),
      api.get<{ data: Key[] }>("/api/keys"),
      api.get<Activity>("/api/activity", { period: "1mo", group_by: "member" }),
    ]);
    if (!context.current()) return;
    const month = new Map<string, GroupCounters>(activity.groups.map((group) => [group.group, group]));
    const rows = members.data.map((member) => {
      const stats = month.get(member.member_id);
      const theirs = keys.data.filter((key) => key.member === member.member_id);
      const button = (action: string, label: string, onclick: () => void): HTMLButtonElement =>
        h("button", { type: "button", class: "small", "data-action": action, "aria-label": `${label} ${memberName(member)}`, onclick }, label);
      const actions = h(
        "div",
        { class: "row-actions", "data-member-id": member.member_id },
        button("rename", "Rename", () => renameDialog(api, member, () => reload(member.member_id, "rename"))),
        button("budget", "Budget", () => budgetDialog(api, member, () => reload(member.member_id, "budget"))),
        button("toggle", member.disabled ? "Enable" : "Disable", () => void toggle(member)),
      );
      return [
        h(
          "div",
          null,
          h("strong", null, memberName(member)),
          h("span", { class: `badge state-${member.disabled ? "disabled" : "active"}` }, member.disabled ? "Disabled" : "Active"),
          member.name ? h("div", { class: "muted small" }, member.member_id) : null,
        ),
        theirs.length
          ? h("ul", { class: "plain" }, theirs.map((key) => h("li", null, key.name, key.disabled ? h("span", { class: "muted small" }, " (disabled)") : null)))
          : h("span", { class: "muted" }, "No keys"),
        count(stats?.requests ?? 0),
        costSpan(stats?.cost ?? "0"),
        member.budget ? spendOfLimit(member.budget.spent_usd, member.budget.spend_limit_usd, member.budget.spend_period, member.budget.next_reset) : h("span", { class: "muted" }, "No budget"),
        actions,
      ];
    });
    fill(
      list,
      table(
        "Members",
        [{ label: "Member" }, { label: "Keys" }, { label: "Requests (30 d)", numeric: true }, { label: "Spend (30 d)", numeric: true }, { label: "Budget" }, { label: "Actions" }],
        rows,
        "No members yet. Add one, then create keys for them on the API keys page.",
      ),
    );
  }

  const reload = reloader(refresh, list, status, "data-member-id");

  async function toggle(member: Member): Promise<void> {
    try {
      await api.patch(`/api/members/${encodeURIComponent(member.member_id)}`, { disabled: !member.disabled });
      fill(
        status,
        message(
          "success",
          member.disabled
            ? `${memberName(member)} enabled. Their keys stay disabled until each is enabled on the API keys page.`
            : `${memberName(member)} disabled, and every key of theirs with them.`,
        ),
      );
      reload(member.member_id, "toggle");
    } catch (error) {
      fill(status, message("error", (error as Error).message));
    }
  }

  add.addEventListener("click", () =>
    addMemberDialog(api, (member) => {
      fill(status, message("success", `${memberName(member)} added. Create keys for them on the API keys page.`));
      reload(member.member_id, "rename");
    }),
  );
  await refresh();
};
