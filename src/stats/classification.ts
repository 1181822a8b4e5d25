/**
 * Performance of a probability score against binary outcomes: pure functions over arrays (the reference
 * the SQL of `scorejob outcomes sync` is tested against) and over decile bins (what the sync reads back).
 */

/** One score decile of the customers with an outcome. */
export interface CalibrationBin {
  customers: number;
  /** Mean score. */
  predicted: number;
  /** Observed positive rate. */
  observed: number;
}

/** AUC by the rank sum of the positives (Mann-Whitney), tied scores sharing their mean rank. NaN without both classes. */
export function aucRankSum(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const order = sortedOrder(scores);
  let rankSum = 0;
  let positives = 0;
  for (let i = 0; i < order.length;) {
    let j = i;
    while (j + 1 < order.length && scores[order[j + 1]!] === scores[order[i]!]) j++;
    const meanRank = (i + j + 2) / 2;
    for (let k = i; k <= j; k++)
      if (labels[order[k]!] === 1) {
        rankSum += meanRank;
        positives++;
      }
    i = j + 1;
  }
  const negatives = order.length - positives;
  return (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}

/** Kolmogorov-Smirnov: max over thresholds of |F_pos - F_neg|, ties stepping together. */
export function ksStatistic(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const order = sortedOrder(scores);
  let positives = 0;
  for (let i = 0; i < labels.length; i++) positives += labels[i] === 1 ? 1 : 0;
  const negatives = labels.length - positives;
  let pos = 0;
  let neg = 0;
  let best = 0;
  for (let i = 0; i < order.length; i++) {
    if (labels[order[i]!] === 1) pos++;
    else neg++;
    const last = i + 1 === order.length || scores[order[i + 1]!] !== scores[order[i]!];
    if (last) best = Math.max(best, Math.abs(pos / positives - neg / negatives));
  }
  return best;
}

export function brierScore(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < scores.length; i++) sum += (scores[i]! - labels[i]!) ** 2;
  return sum / scores.length;
}

/** Scores clamped to [1e-15, 1 - 1e-15] so a confident miss costs ~34.5, not Infinity. */
export function logLoss(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < scores.length; i++) {
    const p = Math.min(Math.max(scores[i]!, 1e-15), 1 - 1e-15);
    sum -= labels[i] === 1 ? Math.log(p) : Math.log(1 - p);
  }
  return sum / scores.length;
}

/** Expected calibration error: customer-weighted mean |predicted - observed| over the bins. */
export function expectedCalibrationError(bins: readonly CalibrationBin[]): number {
  let n = 0;
  let sum = 0;
  for (const b of bins) {
    n += b.customers;
    sum += b.customers * Math.abs(b.predicted - b.observed);
  }
  return n === 0 ? NaN : sum / n;
}

/** Positive rate of the highest bin over the overall rate (bins lowest first). */
export function topBinLift(bins: readonly CalibrationBin[]): number {
  let n = 0;
  let positives = 0;
  for (const b of bins) {
    n += b.customers;
    positives += b.customers * b.observed;
  }
  const top = bins.at(-1);
  return top === undefined || positives === 0 ? NaN : top.observed / (positives / n);
}

/**
 * The AUC expected when each outcome is drawn with its score as probability (confidence-based estimation):
 * E[concordant pairs] / E[positive-negative pairs], a pair of tied scores counting half, a customer never
 * paired with itself.
 */
export function expectedAuc(probabilities: ArrayLike<number>): number {
  const order = sortedOrder(probabilities);
  let negativeMassBelow = 0;
  let concordant = 0;
  let self = 0;
  let sumP = 0;
  for (let i = 0; i < order.length;) {
    let j = i;
    let groupP = 0;
    let groupQ = 0;
    while (j < order.length && probabilities[order[j]!] === probabilities[order[i]!]) {
      const p = probabilities[order[j]!]!;
      groupP += p;
      groupQ += 1 - p;
      self += p * (1 - p);
      j++;
    }
    concordant += groupP * (negativeMassBelow + groupQ / 2);
    negativeMassBelow += groupQ;
    sumP += groupP;
    i = j;
  }
  return (concordant - self / 2) / (sumP * (order.length - sumP) - self);
}

function sortedOrder(values: ArrayLike<number>): Uint32Array {
  const order = new Uint32Array(values.length);
  for (let i = 0; i < order.length; i++) order[i] = i;
  return order.sort((a, b) => values[a]! - values[b]!);
}
