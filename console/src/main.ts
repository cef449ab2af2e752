// The console's shell: sign-in, navigation and routing between pages (history API, real paths).
import "./styles.css";
import { ApiError, apiBase, createApi, type Api } from "./api";
import type { Page, PageContext } from "./context";
import { fill, h, message, options } from "./dom";
import { activityPage } from "./pages/activity";
import { creditPage } from "./pages/credit";
import { dashboardPage } from "./pages/dashboard";
import { keysPage } from "./pages/keys";
import { membersPage } from "./pages/members";
import { signInPage } from "./pages/signin";
import { usagePage } from "./pages/usage";
import { session } from "./session";
import { browserZone, chooseZone, isUtc, zoneChoice, type ZoneChoice } from "./zone";

interface Route {
  path: string;
  title: string;
  page: Page;
}

const ROUTES: Route[] = [
  { path: "/", title: "Dashboard", page: dashboardPage },
  { path: "/usage", title: "Usage", page: usagePage },
  { path: "/activity", title: "Activity", page: activityPage },
  { path: "/keys", title: "API keys", page: keysPage },
  { path: "/members", title: "Members", page: membersPage },
  { path: "/credit", title: "Credit", page: creditPage },
];

const root = document.getElementById("app") as HTMLElement;
let api: Api;
let base = "";
let visit = 0;
let cleanups: (() => void)[] = [];
let signInNotice: string | null = null;

function leave(): void {
  // A dialog (a new key's secret, say) belongs to the page it was opened on.
  for (const dialog of document.querySelectorAll("dialog")) dialog.close();
  for (const cleanup of cleanups) cleanup();
  cleanups = [];
  visit += 1;
}

function navigate(path: string, options: { replace?: boolean } = {}): void {
  if (options.replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  // A screen reader or keyboard user lands on the new page's content, not back at the top bar.
  void render().then(() => document.getElementById("main")?.focus({ preventScroll: true }));
}

function signOut(notice: string | null = null): void {
  session.signOut();
  signInNotice = notice;
  leave();
  void render();
}

/** Times and dates in the browser's time zone or in UTC: every page is drawn again in the choice. */
function zoneSwitch(): HTMLElement {
  const local = browserZone();
  const choices: [ZoneChoice, string][] = [
    ["local", isUtc(local) ? "UTC (this browser's)" : `Local (${local})`],
    ["utc", "UTC"],
  ];
  const select = h("select", { name: "time-zone", class: "small" }, options(choices, zoneChoice()));
  select.addEventListener("change", () => {
    chooseZone(select.value as ZoneChoice);
    void render();
  });
  return h("label", { class: "zone-switch" }, h("span", { class: "muted small" }, "Times"), select);
}

function shell(active: Route): HTMLElement {
  const main = h("main", { id: "main", tabindex: "-1" });
  const links = ROUTES.map((route) =>
    h(
      "a",
      { href: route.path, "data-link": true, "aria-current": route === active ? "page" : null },
      route.title,
    ),
  );
  const nav = h("nav", { "aria-label": "Main" }, h("div", { class: "nav-links" }, links));
  const header = h(
    "header",
    { class: "topbar" },
    h("a", { class: "brand", href: "/", "data-link": true }, h("span", { class: "logo", "aria-hidden": "true" }), "Meterway"),
    nav,
    zoneSwitch(),
    h("button", { class: "ghost sign-out", type: "button", onclick: () => signOut() }, "Sign out"),
  );
  fill(root, h("a", { class: "skip", href: "#main" }, "Skip to content"), header, main);
  return main;
}

async function render(): Promise<void> {
  leave();
  const thisVisit = visit;
  if (!session.key()) {
    document.title = "Sign in · Meterway";
    const notice = signInNotice;
    signInNotice = null;
    await signInPage(root, (key) => createApi(base, () => key, () => {}), notice, () => void render());
    return;
  }
  const path = location.pathname.replace(/\/+$/, "") || "/";
  const route = ROUTES.find((candidate) => candidate.path === path);
  if (!route) {
    const main = shell(ROUTES[0]);
    document.title = "Not found · Meterway";
    fill(main, h("h1", null, "Page not found"), h("p", null, "There is no page at ", h("code", null, path), ". ", h("a", { href: "/", "data-link": true }, "Go to the dashboard"), "."));
    return;
  }
  document.title = `${route.title} · Meterway`;
  const main = shell(route);
  const context: PageContext = {
    api,
    main,
    params: new URLSearchParams(location.search),
    navigate,
    onLeave: (cleanup) => cleanups.push(cleanup),
    current: () => visit === thisVisit,
  };
  try {
    await route.page(context);
  } catch (error) {
    if (!context.current()) return;
    fill(
      main,
      h("h1", null, route.title),
      message("error", error instanceof Error ? error.message : String(error)),
      h("button", { type: "button", onclick: () => void render() }, "Try again"),
    );
  }
}

// In-app links navigate without reloading; modified clicks (new tab) keep the browser's behaviour.
document.addEventListener("click", (event) => {
  const target = event.target as Element | null;
  const link = target?.closest("a[data-link]") as HTMLAnchorElement | null;
  if (!link || event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  if (link.pathname + link.search !== location.pathname + location.search) navigate(link.pathname + link.search);
});
window.addEventListener("popstate", () => void render());

async function start(): Promise<void> {
  base = await apiBase();
  api = createApi(base, session.key, (error: ApiError) => {
    if (session.key()) signOut(`Signed out: ${error.message}`);
  });
  await render();
}

void start();
