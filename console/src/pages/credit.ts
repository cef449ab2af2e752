// Credit: the prepaid balance, adding credit with a note, and every top-up made.
import { loading, statCard, statGrid, table } from "../components";
import type { PageContext } from "../context";
import { submitting } from "../dialog";
import { fill, field, h, message } from "../dom";
import { costSpan, timestamp } from "../format";
import type { Balance, Key } from "../types";

export const creditPage = async (context: PageContext): Promise<void> => {
  const { api, main } = context;
  const status = h("div", { class: "page-errors" });
  const stats = h("div", null, loading());
  const history = h("div");
  const amount = h("input", { type: "text", inputmode: "decimal", name: "amount_usd", required: true, placeholder: "25.00", autocomplete: "off" });
  const note = h("input", { type: "text", name: "note", maxlength: "500", placeholder: "e.g. invoice 42", autocomplete: "off" });
  const formStatus = h("div");
  const form = h(
    "form",
    { class: "topup", "aria-labelledby": "topup-title" },
    h("div", { class: "row" }, field("Amount (USD)", amount), field("Note", note, "Optional: what the credit is for.")),
    formStatus,
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "primary" }, "Add credit")),
  );
  fill(
    main,
    h("div", { class: "page-head" }, h("h1", null, "Credit")),
    h("p", { class: "muted" }, "Prepaid credit caps what the whole account spends: once the balance is used up, every key is refused with a 402 until credit is added. The first top-up turns the limit on."),
    status,
    stats,
    h("section", { class: "card", "aria-labelledby": "topup-title" }, h("h2", { id: "topup-title" }, "Add credit"), form),
    h("section", { class: "card", "aria-labelledby": "history-title" }, h("h2", { id: "history-title" }, "Top-ups"), history),
  );

  let names = new Map<string, string>();

  function show(balance: Balance): void {
    fill(
      stats,
      statGrid(
        statCard("Balance", balance.balance_usd === null ? h("span", { class: "muted" }, "No prepaid limit") : costSpan(balance.balance_usd), balance.balance_usd === null ? "Add credit to set one" : "Credit left to spend"),
        statCard("Credit added", costSpan(balance.credits_usd), `${balance.topups.length === 50 ? "50+" : balance.topups.length} top-up${balance.topups.length === 1 ? "" : "s"}`),
        statCard("Spent in all", costSpan(balance.spent_usd), Number(balance.spent_before_credit_usd) > 0 ? h("span", null, costSpan(balance.spent_before_credit_usd), " before any credit") : null),
      ),
    );
    fill(
      history,
      table(
        "Top-ups, newest first",
        [{ label: "Added" }, { label: "Amount", numeric: true }, { label: "Note" }, { label: "By" }],
        balance.topups.map((topup) => [
          h("time", { datetime: topup.created_at }, timestamp(topup.created_at)),
          costSpan(topup.amount_usd),
          topup.note ?? h("span", { class: "muted" }, "—"),
          names.get(topup.created_by) ?? topup.created_by,
        ]),
        "No credit added yet: the account spends without a prepaid limit.",
      ),
    );
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void submitting(form, formStatus, async () => {
      const balance = await api.post<Balance>("/api/balance/topups", { amount_usd: amount.value.trim(), note: note.value.trim() || null });
      if (!context.current()) return;
      fill(status, message("success", `Added $${amount.value.trim()} of credit. The gateway sees it within half a minute.`));
      form.reset();
      show(balance);
    });
  });

  const [balance, keys] = await Promise.all([api.get<Balance>("/api/balance"), api.get<{ data: Key[] }>("/api/keys")]);
  if (!context.current()) return;
  // Top-ups are recorded by the admin key that made them (or "cli"): shown by its name.
  names = new Map(keys.data.map((key) => [key.id, key.name]));
  show(balance);
};
