/**
 * Estimated cost: a price per 1,000 prompt and completion tokens for each deployment, the same figures
 * `phiserve usage` and `GET /admin/usage` report (docs/ADMIN-API.md "Cost").
 */
import type { PriceView } from "../protocol/admin.schema.ts";

/**
 * Default prices, USD per 1,000 tokens: Azure AI serverless (pay-as-you-go) list prices for
 * Phi-3.5-mini-instruct (input 0.00013, output 0.00052), the model `npm start` serves. Prices change and
 * differ by model and region; set a deployment's own in the config file (`price:`) or the server's default
 * with `--price-prompt` / `--price-completion`.
 */
export const DEFAULT_PRICE_PROMPT_PER_1K = 0.00013;
/** See {@link DEFAULT_PRICE_PROMPT_PER_1K}. */
export const DEFAULT_PRICE_COMPLETION_PER_1K = 0.00052;

export const DEFAULT_PRICE: Readonly<PriceView> = Object.freeze({ promptPer1k: DEFAULT_PRICE_PROMPT_PER_1K, completionPer1k: DEFAULT_PRICE_COMPLETION_PER_1K });

/** What usage costs: the server's default price and each deployment's own. */
export interface UsagePrices {
  default: PriceView;
  deployments: Readonly<Record<string, PriceView>>;
}

/** The price of `deployment`'s tokens. */
export function priceOf(prices: UsagePrices, deployment: string): PriceView {
  return prices.deployments[deployment] ?? prices.default;
}

/** USD for these tokens at `price`, rounded to 1e-8. */
export function costOf(price: PriceView, promptTokens: number, completionTokens: number): number {
  const cost = (promptTokens / 1000) * price.promptPer1k + (completionTokens / 1000) * price.completionPer1k;
  return roundUsd(cost);
}

export function roundUsd(value: number): number {
  return Math.round(value * 1e8) / 1e8;
}
