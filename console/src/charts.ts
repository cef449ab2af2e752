// Charts from Chart.js, bundled at build time: only the parts the console draws are registered.
import { h } from "./dom";
import type { ChartFormat } from "./format";
import type { Counters } from "./types";
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Legend,
  LinearScale,
  Tooltip,
  type ChartDataset,
} from "chart.js";

Chart.register(
  BarController,
  BarElement,
  CategoryScale,
  Legend,
  LinearScale,
  Tooltip,
);
Chart.defaults.font.family = getComputedStyle(document.documentElement).getPropertyValue("--font").trim() || "system-ui";
Chart.defaults.color = "#4b5563";
Chart.defaults.animation = false;

/** What a chart of usage shows: spend, tokens or requests. */
export type ChartMetric = "cost" | "total_tokens" | "requests";

export function metricOf(counters: Counters | undefined, metric: ChartMetric): number {
  if (!counters) return 0;
  return metric === "cost" ? Number(counters.cost) : counters[metric];
}

const MOST_SERIES = 8;

/** One series per name ([id, label], in the order given: the biggest first), those past the
 * eighth summed into "Other". */
export function stackedSeries<B>(buckets: B[], names: [string, string][], value: (bucket: B, id: string) => number): Series[] {
  const series = names.slice(0, MOST_SERIES).map(([id, label]) => ({ label, values: buckets.map((bucket) => value(bucket, id)) }));
  const rest = names.slice(MOST_SERIES).map(([id]) => id);
  if (rest.length) {
    series.push({ label: "Other", values: buckets.map((bucket) => rest.reduce((sum, id) => sum + value(bucket, id), 0)) });
  }
  return series;
}

// Tableau 10: categorical colours that stay apart from each other, for the stacked groups.
const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f"];
export const OTHER_COLOUR = "#bab0ac";

export function colour(index: number): string {
  return PALETTE[index % PALETTE.length];
}

export interface Series {
  label: string;
  values: number[];
}

/** A canvas that screen readers read as an image described by `summary`. */
function canvas(summary: string): HTMLCanvasElement {
  const element = document.createElement("canvas");
  element.setAttribute("role", "img");
  element.setAttribute("aria-label", summary);
  return element;
}

/** Bars per bucket, stacked by series when there are several. */
export function barChart(
  labels: string[],
  series: Series[],
  summary: string,
  format: ChartFormat,
): { element: HTMLElement; chart: Chart } {
  const element = canvas(summary);
  const stacked = series.length > 1;
  const datasets: ChartDataset<"bar">[] = series.map((one, index) => ({
    label: one.label,
    data: one.values,
    backgroundColor: one.label === "Other" ? OTHER_COLOUR : colour(index),
    borderRadius: 2,
    maxBarThickness: 36,
  }));
  const chart = new Chart(element, {
    type: "bar",
    data: { labels, datasets },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      interaction: { mode: "index", intersect: false },
      scales: {
        x: { stacked, grid: { display: false }, ticks: { autoSkip: true, maxRotation: 0 } },
        y: { stacked, ...valueAxis(series, format) },
      },
      plugins: {
        legend: { display: stacked, position: "bottom", labels: { boxWidth: 12 } },
        tooltip: {
          callbacks: { label: (item) => `${item.dataset.label}: ${format.value(Number(item.raw))}` },
        },
      },
    },
  });
  return { element: wrap(element, series), chart };
}

/** One or two lines over days, filled under the first. */
function empty(series: Series[]): boolean {
  return series.every((one) => one.values.every((value) => !value));
}

/** The value axis: from zero, whole-number ticks for counts; with nothing to draw, no ticks at all
 * (Chart.js would draw an empty range as 0 to 1: "$0–$1", or 0.2 of a request). */
function valueAxis(series: Series[], format: ChartFormat) {
  return {
    beginAtZero: true,
    ticks: { display: !empty(series), precision: format.whole ? 0 : undefined, callback: (value: string | number) => format.axis(Number(value)) },
  };
}

function wrap(element: HTMLCanvasElement, series: Series[]): HTMLElement {
  const box = document.createElement("div");
  box.className = "chart-box";
  box.appendChild(element);
  if (empty(series)) box.appendChild(h("p", { class: "chart-empty" }, "No usage in this range."));
  return box;
}
