/**
 * Deterministic synthetic customers: the rows `scorejob seed` loads into the source table and the rows
 * `scripts/train.ts` trains the shipped model on. Both go through the one generator below, so the same
 * seed gives the same customers whether they end up in PostgreSQL or in a training set.
 *
 * Pure code (no database): seed.ts streams {@link copyTextBlocks} into COPY.
 */
import { defaults } from '../config.js';

/** A column of the synthetic customers table, as PostgreSQL declares it. */
export interface CustomerColumn {
  readonly name: keyof CustomerRow;
  /** PostgreSQL type used by `CREATE TABLE`. */
  readonly type: string;
  /** Whether the generator emits NULLs in this column (at the rate of `nullFraction`). */
  readonly nullable: boolean;
}

/** The columns, in table and COPY order. */
export const customerColumns: readonly CustomerColumn[] = [
  { name: 'customer_id', type: 'bigint', nullable: false },
  { name: 'tenure_months', type: 'integer', nullable: false },
  { name: 'orders_12m', type: 'integer', nullable: false },
  { name: 'revenue_12m', type: 'numeric(12,2)', nullable: false },
  { name: 'avg_order_value', type: 'numeric(10,2)', nullable: false },
  { name: 'days_since_last_order', type: 'integer', nullable: true },
  { name: 'support_tickets_12m', type: 'integer', nullable: false },
  { name: 'discount_share', type: 'double precision', nullable: false },
  { name: 'returns_12m', type: 'integer', nullable: false },
  { name: 'web_sessions_30d', type: 'integer', nullable: false },
  { name: 'email_open_rate', type: 'double precision', nullable: true },
  { name: 'segment', type: 'text', nullable: false },
  { name: 'region', type: 'text', nullable: true },
  { name: 'channel', type: 'text', nullable: false },
  { name: 'is_subscriber', type: 'boolean', nullable: false },
  { name: 'has_app', type: 'boolean', nullable: true },
];

export const segments = ['consumer', 'smb', 'enterprise'] as const;
export const regions = ['north', 'south', 'east', 'west', 'central'] as const;
export const channels = ['web', 'store', 'partner', 'phone'] as const;
export type Segment = (typeof segments)[number];
export type Region = (typeof regions)[number];
export type Channel = (typeof channels)[number];

/** One customer, keyed by column name. Numeric values are exactly what PostgreSQL stores (cents, 4-digit rates). */
export interface CustomerRow {
  /** Increasing with gaps of 1 to 7; stays far below 2^53 for any realistic count. */
  customer_id: number;
  tenure_months: number;
  orders_12m: number;
  revenue_12m: number;
  avg_order_value: number;
  /** NULL: the customer never ordered. */
  days_since_last_order: number | null;
  support_tickets_12m: number;
  /** Share of revenue bought on discount, 0..1. */
  discount_share: number;
  returns_12m: number;
  web_sessions_30d: number;
  /** 0..1; NULL when unknown (no email consent). */
  email_open_rate: number | null;
  segment: Segment;
  region: Region | null;
  channel: Channel;
  is_subscriber: boolean;
  has_app: boolean | null;
}

/** A customer with its hidden training label (not a column of the source table). */
export interface LabeledCustomerRow extends CustomerRow {
  /** Whether the customer churned in the next 90 days. */
  churned: boolean;
}

/** What to generate. */
export interface SyntheticOptions {
  /** Number of customers. */
  count: number;
  /** PRNG seed (a 32-bit integer); the same seed and options give the same customers. */
  seed: number;
  /** Share of NULLs in each nullable column, in [0, 1]. Default 0.02. */
  nullFraction?: number;
}

export const defaultNullFraction = defaults.nullFraction;

/**
 * The customers, one fresh object each (for training and tests; seeding uses {@link copyTextBlocks}).
 * @internal exported for tests
 */
export function* generateCustomers(opts: SyntheticOptions): Generator<CustomerRow> {
  for (const row of generateLabeledCustomers(opts)) {
    const { churned: _hidden, ...customer } = row;
    yield customer;
  }
}

/** The same customers as {@link generateCustomers}, with the hidden `churned` label. */
export function* generateLabeledCustomers(opts: SyntheticOptions): Generator<LabeledCustomerRow> {
  const next = createStepper(opts);
  const row = emptyRow();
  for (let i = 0; i < opts.count; i++) {
    next(row);
    yield { ...row };
  }
}

/**
 * The customers as PostgreSQL text COPY data (tab-separated, `\N` for NULL, columns in
 * {@link customerColumns} order), in blocks of about `blockChars` characters. ASCII only.
 */
export function* copyTextBlocks(opts: SyntheticOptions, blockChars = 65_536): Generator<string> {
  const next = createStepper(opts);
  // One reused row and one string per block: the 5-million-row seed must not allocate per row beyond its text.
  const row = emptyRow();
  let block = '';
  for (let i = 0; i < opts.count; i++) {
    next(row);
    block += formatCopyLine(row);
    if (block.length >= blockChars) {
      yield block;
      block = '';
    }
  }
  if (block !== '') yield block;
}

/**
 * One row as a line of PostgreSQL text COPY format, newline included.
 * @internal exported for tests
 */
export function formatCopyLine(r: CustomerRow): string {
  const openRate = r.email_open_rate;
  return (
    `${r.customer_id}\t${r.tenure_months}\t${r.orders_12m}\t${money(r.revenue_12m)}\t${money(r.avg_order_value)}\t` +
    `${r.days_since_last_order ?? '\\N'}\t${r.support_tickets_12m}\t${rate4(r.discount_share)}\t${r.returns_12m}\t` +
    `${r.web_sessions_30d}\t${openRate === null ? '\\N' : rate4(openRate)}\t${r.segment}\t${r.region ?? '\\N'}\t${r.channel}\t` +
    `${r.is_subscriber ? 't' : 'f'}\t${r.has_app === null ? '\\N' : r.has_app ? 't' : 'f'}\n`
  );
}

// Shortest-round-trip float printing is the slowest part of a line; these values are whole cents and
// 4-digit rates, so integer printing gives the same decimal (and PostgreSQL parses it to the same double).
function money(x: number): string {
  const cents = Math.round(x * 100);
  const frac = cents % 100;
  return `${(cents - frac) / 100}.${frac < 10 ? '0' : ''}${frac}`;
}

function rate4(x: number): string {
  const v = Math.round(x * 10_000);
  if (v >= 10_000) return '1';
  return v < 10 ? `0.000${v}` : v < 100 ? `0.00${v}` : v < 1000 ? `0.0${v}` : `0.${v}`;
}

/**
 * The systematic part of the churn model: the log-odds of churning given what the table shows.
 * The label adds unobserved noise to it, so no model can be perfect; this is the best a model can learn.
 */
export function churnLogit(r: CustomerRow): number {
  const days = r.days_since_last_order;
  // Recency dominates, with a step once a customer is past a quarter without ordering.
  const recency = days === null ? 5 : Math.min(days, 730) / 120;
  let z = -2.2 + 0.55 * Math.min(recency, 5) + (days === null || days > 90 ? 0.7 : 0);
  z -= 0.35 * Math.log1p(r.orders_12m);
  z -= 0.02 * Math.min(r.tenure_months, 60);
  z += 0.3 * Math.min(r.support_tickets_12m, 6);
  z += 1.6 * (r.returns_12m / (r.orders_12m + 1));
  z += 1.4 * r.discount_share;
  z -= r.is_subscriber ? 0.8 : 0;
  z -= r.has_app === true ? 0.4 : 0;
  z -= 2 * ((r.email_open_rate ?? 0.25) - 0.25);
  z -= 0.06 * Math.min(r.web_sessions_30d, 20);
  z += r.segment === 'consumer' ? 0.3 : r.segment === 'enterprise' ? -0.7 : 0;
  z += r.channel === 'partner' ? 0.35 : 0;
  return z;
}

/** {@link churnLogit} as a probability. */
export function churnProbability(r: CustomerRow): number {
  return 1 / (1 + Math.exp(-churnLogit(r)));
}

function emptyRow(): LabeledCustomerRow {
  return {
    customer_id: 0,
    tenure_months: 0,
    orders_12m: 0,
    revenue_12m: 0,
    avg_order_value: 0,
    days_since_last_order: null,
    support_tickets_12m: 0,
    discount_share: 0,
    returns_12m: 0,
    web_sessions_30d: 0,
    email_open_rate: null,
    segment: 'consumer',
    region: null,
    channel: 'web',
    is_subscriber: false,
    has_app: null,
    churned: false,
  };
}

/**
 * Returns a function that overwrites `row` with the next customer. Every random draw comes from one
 * seeded stream in a fixed order, which is what makes the output a pure function of the options.
 */
function createStepper(opts: SyntheticOptions): (row: LabeledCustomerRow) => void {
  const nullFraction = opts.nullFraction ?? defaultNullFraction;
  const rand = mulberry32(opts.seed);
  const normal = (): number => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const poisson = (rate: number): number => {
    if (rate > 30) return Math.max(0, Math.round(rate + Math.sqrt(rate) * normal()));
    // Knuth: multiply uniforms until below e^-rate; cheap for the small rates used here.
    const limit = Math.exp(-rate);
    let k = 0;
    for (let p = rand(); p > limit; p *= rand()) k++;
    return k;
  };
  // Keys start at a seeded offset so that two seeds do not even share their first key.
  let id = 1000 + Math.floor(rand() * 100_000);

  return (row) => {
    id += 1 + Math.floor(rand() * 7);
    row.customer_id = id;
    const u = rand();
    const seg = u < 0.7 ? 0 : u < 0.92 ? 1 : 2;
    const c = rand();
    const channel: Channel = c < 0.45 ? 'web' : c < 0.75 ? 'store' : c < 0.85 ? 'partner' : 'phone';
    const region = rand() < nullFraction ? null : pickRegion(rand());
    const tenure = Math.min(120, Math.floor(-Math.log(1 - rand()) * (24 + 12 * seg)));
    // A latent engagement level drives most behaviour, which is what correlates the columns.
    const engagement = normal();
    const subscriber = rand() < sigmoid(-1.1 + 0.8 * engagement + 0.01 * tenure + (seg > 0 ? 0.5 : 0));
    const app = rand() < sigmoid(-0.7 + 0.9 * engagement + (channel === 'web' ? 0.6 : 0));
    const hasAppNull = rand() < nullFraction;
    const neverOrdered = rand() < nullFraction;

    const ramp = Math.min(1, (tenure + 1) / 12);
    const rate = [4, 10, 24][seg]! * Math.exp(0.6 * engagement + 0.3 * normal()) * ramp * (subscriber ? 1.3 : 1);
    const orders = neverOrdered ? 0 : poisson(rate);
    const aovDraw = [55, 220, 1100][seg]! * Math.exp(0.45 * normal());
    const revenueCents = Math.max(0, Math.round(orders * aovDraw * (1 + 0.08 * normal()) * 100));
    const returns = orders > 0 ? Math.min(orders, poisson(orders * 0.05 * Math.exp(0.5 * normal()))) : 0;
    let days: number | null = null;
    if (!neverOrdered) {
      const wait = -Math.log(1 - rand());
      days = orders > 0 ? Math.min(364, Math.floor((wait * 365) / (orders + 1))) : Math.min(2000, 365 + Math.floor(wait * 300));
    }
    const tickets = poisson(0.2 + 0.08 * Math.pow(orders, 0.7) + (seg === 2 ? 0.8 : 0)) + (returns >> 1);
    const discount = orders > 0 ? clamp01(Math.pow(rand(), 1.8) * 0.7 + (channel === 'partner' ? 0.15 : 0) - 0.05 * engagement) : 0;
    const sessions = poisson((channel === 'web' ? 6 : 2) * Math.exp(0.7 * engagement) * (app ? 1.5 : 1));
    const openRate = clamp01(0.22 + 0.08 * engagement + (subscriber ? 0.1 : 0) + 0.1 * normal());
    const emailNull = rand() < nullFraction;

    row.tenure_months = tenure;
    row.orders_12m = orders;
    // Money in whole cents and rates at 4 digits: the JS number equals what PostgreSQL stores and returns.
    row.revenue_12m = revenueCents / 100;
    row.avg_order_value = orders > 0 ? Math.min(99_999_999, Math.round(revenueCents / orders)) / 100 : 0;
    row.days_since_last_order = days;
    row.support_tickets_12m = tickets;
    row.discount_share = Math.round(discount * 10_000) / 10_000;
    row.returns_12m = returns;
    row.web_sessions_30d = sessions;
    row.email_open_rate = emailNull ? null : Math.round(openRate * 10_000) / 10_000;
    row.segment = segments[seg]!;
    row.region = region;
    row.channel = channel;
    row.is_subscriber = subscriber;
    row.has_app = hasAppNull ? null : app;
    // Drawn for every row (also when seeding) so that labeled and unlabeled streams stay the same customers.
    row.churned = rand() < sigmoid(churnLogit(row) + 0.5 * normal());
  };
}

function pickRegion(u: number): Region {
  return u < 0.24 ? 'north' : u < 0.44 ? 'south' : u < 0.66 ? 'east' : u < 0.84 ? 'west' : 'central';
}

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

function clamp01(x: number): number {
  return x < 0 ? 0 : x > 1 ? 1 : x;
}

/** mulberry32: a tiny, fast 32-bit PRNG; plenty for synthetic data, and identical on every platform. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
