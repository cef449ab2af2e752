// The management API's response shapes (see /api/openapi.json). Costs are exact decimal strings.

export interface Counters {
  cost: string;
  /** Requests served, in full or in part. */
  requests: number;
  /** Requests that failed: nothing served, nothing billed. */
  errors: number;
  input_tokens: number;
  output_tokens: number;
  reasoning_tokens: number;
  cache_creation_tokens: number;
  cache_creation_5m_tokens: number;
  cache_creation_1h_tokens: number;
  cache_read_tokens: number;
  total_tokens: number;
}

export interface ModelCounters extends Counters {
  model: string;
}

export interface Usage {
  start: string;
  end: string;
  filters: { model: string | null; key: string | null; user: string | null; app: string | null };
  totals: Counters;
  models: ModelCounters[];
  /** `by_model`: each bucket has its models (unless one model is filtered on, or the window's
   * buckets × models are too many to read). */
  series: { granularity: string; by_model: boolean; buckets: (Counters & { start: string; models?: Record<string, Counters> })[] };
}

export interface RequestTokens {
  total: number;
  input: number;
  output: number;
  reasoning: number;
  cache_creation: number;
  cache_creation_5m: number | null;
  cache_creation_1h: number | null;
  cache_read: number;
}

/** An attempt that failed before its request fell back to another try or route; it billed nothing. */
export interface RequestAttempt {
  id: string;
  attempt: number | null;
  provider: string | null;
  /** The catalog model it tried, when not the request's model. */
  route: string | null;
  status: string;
  error_code: string | null;
  upstream_status: number | null;
  latency_ms: number;
  cost: string;
}

export interface RequestRow {
  id: string;
  created_at: string;
  model: string;
  /** The provider it went to last: after a fallback, the one that answered. */
  provider: string | null;
  /** The catalog model that served it, when not `model` (a fallback route). */
  route: string | null;
  /** Its failed attempts before the one that answered, in order. */
  attempts: RequestAttempt[];
  key_id: string;
  key_name: string | null;
  member: string | null;
  /** The end user and the app the request named. */
  user: string | null;
  app: string | null;
  status: string;
  /** The inference endpoint: chat.completions, messages or responses. */
  endpoint: string | null;
  /** Why it failed (status "error"): the upstream's HTTP status and our error code. */
  error_code: string | null;
  upstream_status: number | null;
  streamed: boolean;
  tokens: RequestTokens;
  usage_estimated: boolean;
  cost: string;
  latency_ms: number | null;
  ttft_ms: number | null;
}

export interface Page<T> {
  data: T[];
  next_cursor: string | null;
}

export type Period = "1h" | "1d" | "1mo" | "1y";
export type GroupBy = "model" | "key" | "member" | "provider" | "user" | "app";

export interface Bucket extends Counters {
  start: string;
  label: string;
  groups: Record<string, Counters>;
  /** By user or app with more groups than shown: the bucket's usage by the rest. */
  other?: Counters | null;
}

export interface Activity {
  period: Period;
  granularity: string;
  group_by: GroupBy;
  start: string;
  end: string;
  buckets: Bucket[];
  /** Each group's totals over the whole period, biggest spend first (by user or app, the 15 that
   * spent most when there are more). */
  groups: GroupCounters[];
  /** The groups not shown, summed; null when every group is. */
  other: Counters | null;
}

export interface GroupCounters extends Counters {
  group: string;
  name: string | null;
}

export interface DailyCounters extends Counters {
  date: string;
}

export interface Trend {
  totals: Counters;
  daily: DailyCounters[];
}

export interface Dashboard {
  as_of: string;
  balance: string | null;
  last_7_days: Trend;
  last_30_days: Trend;
  top_models: ModelCounters[];
  recent_activity: RequestRow[];
}

export interface Limits {
  spend_limit_usd: string | null;
  spend_period: "daily" | "weekly" | "monthly" | "none";
  requests_per_minute: number | null;
  tokens_per_minute: number | null;
  allowed_models: string[] | null;
}

export interface Key {
  id: string;
  name: string;
  kind: "admin" | "api";
  member: string | null;
  prefix: string;
  disabled: boolean;
  created_at: string;
  valid_until: string | null;
  limits: Limits;
  spend_to_date: string;
  /** For a key with a spend limit: what it spent in the current period. */
  spent_this_period: string | null;
  last_used_at: string | null;
}

export interface KeyWithSecret extends Key {
  secret: string;
}

export interface MemberBudget {
  spend_limit_usd: string;
  spend_period: "daily" | "weekly" | "monthly" | "none";
  since: string;
  spent_usd: string;
  remaining_usd: string;
  next_reset: string | null;
}

export interface Member {
  member_id: string;
  name: string | null;
  disabled: boolean;
  created_at: string;
  /** What all the member's keys together may spend in a period; null: no budget. */
  budget: MemberBudget | null;
}

export interface TopUp {
  id: string;
  amount_usd: string;
  note: string | null;
  created_by: string;
  created_at: string;
}

export interface Balance {
  /** The sum of the top-ups. */
  credits_usd: string;
  spent_usd: string;
  /** What was spent before the first top-up: the credit does not pay for it. */
  spent_before_credit_usd: string;
  balance_usd: string | null;
  /** The latest 50 top-ups, newest first. */
  topups: TopUp[];
}

export interface ExportStatus {
  id: string;
  kind: string;
  format: string;
  status: "queued" | "running" | "succeeded" | "failed";
  rows: number;
  filename: string;
  url: string | null;
  expires_at: string | null;
  error: string | null;
}

export interface CatalogModel {
  id: string;
}
