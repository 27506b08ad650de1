/**
 * An engine factory for tests of the layers above the engine: every deployment gets its own
 * scripted {@link FakeEngine}, and the test keeps a handle on each one it made.
 */
import type { EngineFactory, EnginePlan } from "../engine-factory.ts";
import { FakeEngine, type FakeEngineOptions } from "./fake-engine.ts";

export interface FakeEngineFactory extends EngineFactory {
  /** The engines made so far, in creation order (one per deployment). */
  readonly engines: FakeEngine[];
}

/** `options` (or `options(plan)`, per deployment) scripts each engine; `parallel` defaults to the plan's, else 1. */
export function createFakeEngineFactory(options: FakeEngineOptions | ((plan: EnginePlan) => FakeEngineOptions)): FakeEngineFactory {
  const engines: FakeEngine[] = [];
  return {
    engines,
    async describe() {
      return {};
    },
    async create(plan) {
      const scripted = typeof options === "function" ? options(plan) : options;
      const engine = new FakeEngine({ ...scripted, sequences: scripted.sequences ?? plan.parallel ?? 1 });
      engines.push(engine);
      return engine;
    },
  };
}
