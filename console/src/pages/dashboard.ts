// Dashboard: balance, the spend trend, top models and the latest requests at a glance.
import { barChart } from "../charts";
import { REQUEST_COLUMNS, requestRows, segmented, statCard, statGrid, table, tableOf } from "../components";
import type { PageContext } from "../context";
import { fill, h } from "../dom";
import { MONEY, bucketLabel, costSpan, count, requestsPhrase, timestamp, usd, utcBars } from "../format";
import type { Dashboard } from "../types";

export const dashboardPage = async (context: PageContext): Promise<void> => {
  const { api, main } = context;
  fill(main, h("h1", null, "Dashboard"), h("p", { class: "muted loading", role: "status" }, "Loading…"));
  const data = await api.get<Dashboard>("/api/dashboard");
  if (!context.current()) return;

  let days: "7" | "30" = "7";
  const chartArea = h("div", { class: "chart-area" });
  let destroy = (): void => {};
  context.onLeave(() => destroy());
  const draw = (): void => {
    destroy();
    const trend = days === "7" ? data.last_7_days : data.last_30_days;
    // Bars: each day is its own amount, and a day without spend shows none (a line would draw a
    // ramp into it).
    const { element, chart } = barChart(
      trend.daily.map((day) => bucketLabel(`${day.date}T00:00:00Z`, "day")),
      [{ label: "Spend", values: trend.daily.map((day) => Number(day.cost)) }],
      `Daily spend over the last ${days} days: ${usd(trend.totals.cost)} in all, ${requestsPhrase(trend.totals.requests, trend.totals.errors)}.`,
      MONEY,
    );
    destroy = () => chart.destroy();
    fill(chartArea, element);
  };

  const balance = data.balance === null ? h("span", { class: "muted" }, "No prepaid limit") : costSpan(data.balance);
  fill(
    main,
    h("div", { class: "page-head" }, h("h1", null, "Dashboard"), h("p", { class: "muted" }, `As of ${timestamp(data.as_of)}${utcBars("day") ? "; days are UTC days" : ""}`)),
    statGrid(
      statCard("Balance", balance, h("a", { href: "/credit", "data-link": true }, data.balance === null ? "Add credit to set one" : "Prepaid credit left · add more")),
      statCard("Spend, last 7 days", costSpan(data.last_7_days.totals.cost), requestsPhrase(data.last_7_days.totals.requests, data.last_7_days.totals.errors)),
      statCard("Spend, last 30 days", costSpan(data.last_30_days.totals.cost), requestsPhrase(data.last_30_days.totals.requests, data.last_30_days.totals.errors)),
      statCard("Tokens, last 30 days", count(data.last_30_days.totals.total_tokens), `${count(data.last_30_days.totals.output_tokens)} output`),
    ),
    h(
      "section",
      { class: "card", "aria-labelledby": "trend-title" },
      h(
        "div",
        { class: "card-head" },
        h("h2", { id: "trend-title" }, "Spend trend"),
        segmented("Range", "trend-days", [["7", "7 days"], ["30", "30 days"]], days, (value) => {
          days = value as "7" | "30";
          draw();
        }),
      ),
      chartArea,
    ),
    h(
      "div",
      { class: "columns" },
      h(
        "section",
        { class: "card", "aria-labelledby": "top-models-title" },
        h("h2", { id: "top-models-title" }, "Top models, last 30 days"),
        table(
          "Top models by spend over the last 30 days",
          [{ label: "Model" }, { label: "Requests", numeric: true }, { label: "Errors", numeric: true }, { label: "Tokens", numeric: true }, { label: "Cost", numeric: true }],
          data.top_models.map((row) => [h("span", { class: "model" }, row.model), count(row.requests), count(row.errors), count(row.total_tokens), costSpan(row.cost)]),
          "No usage yet.",
        ),
      ),
    ),
    h(
      "section",
      { class: "card", "aria-labelledby": "recent-title" },
      h("div", { class: "card-head" }, h("h2", { id: "recent-title" }, "Recent activity"), h("a", { href: "/usage", "data-link": true }, "All usage →")),
      tableOf("The latest requests", REQUEST_COLUMNS, requestRows(data.recent_activity, timestamp), "No requests yet. Point an OpenAI or Anthropic SDK at the gateway to see them here."),
    ),
  );
  draw();
};
