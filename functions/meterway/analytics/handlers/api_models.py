"""Response models of the management API (they make its OpenAPI document)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class UsageFigures(BaseModel):
    cost: str = Field(description="USD as an exact decimal string")
    requests: int = Field(description="requests served, in full or in part")
    errors: int = Field(description="requests that failed: nothing served, nothing billed")
    input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cache_creation_tokens: int
    cache_creation_5m_tokens: int
    cache_creation_1h_tokens: int
    cache_read_tokens: int
    total_tokens: int


class ModelUsage(UsageFigures):
    model: str


class UsageFilters(BaseModel):
    model: str | None
    key: str | None
    user: str | None
    app: str | None


class SeriesBucket(UsageFigures):
    start: str = Field(description="UTC; the window's start for a bucket it cuts")
    models: dict[str, UsageFigures] | None = Field(
        default=None, description="The bucket's figures per model, when the series is by model"
    )


class UsageSeries(BaseModel):
    granularity: str = Field(description="minute up to 3 hours, hour up to 3 days, day up to 400 days, else month")
    by_model: bool = Field(
        description="Each bucket has its models: unless a model is filtered on, or the window's buckets × models "
        "are too many to read (up to 1,500 items with the table's)"
    )
    buckets: list[SeriesBucket] = Field(
        description="Every bucket of the window, empty ones included; they add up to the totals"
    )


class UsageResponse(BaseModel):
    start: str = Field(description="UTC, inclusive")
    end: str = Field(description="UTC, exclusive")
    filters: UsageFilters
    totals: UsageFigures
    models: list[ModelUsage]
    series: UsageSeries


class RequestTokens(BaseModel):
    total: int
    input: int
    output: int
    reasoning: int
    cache_creation: int
    cache_creation_5m: int
    cache_creation_1h: int
    cache_read: int


class AttemptEntry(BaseModel):
    """An attempt of a request that failed before it fell back to the next try or route; it billed nothing."""

    id: str = Field(description="'<request id>.<n>': its own ledger record")
    attempt: int | None
    provider: str | None
    route: str | None = Field(description="The catalog model it tried, when not the request's model")
    status: str
    error_code: str | None
    upstream_status: int | None
    latency_ms: int
    cost: str


class RequestEntry(BaseModel):
    id: str
    created_at: str
    model: str
    provider: str | None
    route: str | None = Field(description="The catalog model that served it, when not 'model' (a fallback route)")
    attempts: list[AttemptEntry] = Field(description="Its failed attempts before the one that answered, in order")
    key_id: str
    key_name: str
    member: str | None
    user: str | None = Field(description="The end user the client named")
    app: str | None = Field(description="The app its X-Title (or X-Meterway-App) header named")
    status: str = Field(description="ok (served), partial (cut short, billed for what was sent) or error (failed)")
    endpoint: str | None = Field(description="chat.completions, messages or responses")
    error_code: str | None = Field(description="Why it failed, for an error")
    upstream_status: int | None = Field(description="The upstream's HTTP status, for an error it answered")
    streamed: bool
    tokens: RequestTokens
    usage_estimated: bool
    cost: str
    latency_ms: int
    ttft_ms: int | None


class RequestLog(BaseModel):
    data: list[RequestEntry]
    next_cursor: str | None = Field(description="Pass as 'cursor' for the next (older) page; null at the end")


class ActivityBucket(UsageFigures):
    start: str
    label: str
    groups: dict[str, UsageFigures]
    other: UsageFigures | None = Field(
        None, description="By user or app with more groups than shown: the bucket's usage by the groups not shown"
    )


class ActivityGroup(UsageFigures):
    group: str
    name: str


class ActivityResponse(BaseModel):
    period: str
    granularity: str
    group_by: str
    start: str
    end: str
    buckets: list[ActivityBucket]
    groups: list[ActivityGroup] = Field(
        description="Each group's usage over the period, the biggest spend first. By user or app, the 15 "
        "that spent most in the hours, days, months or years the period lies in, when there are more"
    )
    other: UsageFigures | None = Field(
        description="By user or app with more groups than 'groups' shows: the rest's usage over the period; "
        "null when every group is shown"
    )


class DailyUsage(UsageFigures):
    date: str


class Trend(BaseModel):
    totals: UsageFigures
    daily: list[DailyUsage]


class DashboardResponse(BaseModel):
    as_of: str
    balance: str | None = Field(description="Credit balance in USD; null while no credit has been added")
    last_7_days: Trend
    last_30_days: Trend
    top_models: list[ModelUsage]
    recent_activity: list[RequestEntry]
