/**
 * Builds a deployment's content filter from its settings (docs/SAFETY.md "Classifiers"): the policy,
 * a blocklist classifier whenever profanity or custom blocklists are on, and the configured
 * classifiers. A guard classifier runs on another deployment of the same server, reached through
 * `guardCompletion` (the composition root supplies it).
 */
import type { ClassifierSettings, ContentSafetySettings } from "../config/serve-config.ts";
import { createAzureContentSafetyClassifier } from "./azure-content-safety-classifier.ts";
import { createBlocklistClassifier } from "./blocklist-classifier.ts";
import type { TextClassifier } from "./classifier.ts";
import { ContentFilter, type ContentFilterHooks } from "./content-filter.ts";
import { createLlamaGuardClassifier, type GuardCompletion } from "./guard-classifier.ts";
import { createJudgeClassifier } from "./judge-classifier.ts";
import { createLexiconClassifier } from "./lexicon-classifier.ts";
import { createOnnxTextClassifier, KOALA_TEXT_MODERATION_LABELS } from "./onnx-text-classifier.ts";

export interface ContentFilterContext {
  /** The completion function of another deployment, by name (for `guard` classifiers). */
  guardCompletion(deployment: string): GuardCompletion;
  /** Environment variables (for the Azure key). */
  env: Readonly<Record<string, string | undefined>>;
  hooks?: ContentFilterHooks | undefined;
}

export async function createContentFilter(settings: ContentSafetySettings, context: ContentFilterContext): Promise<ContentFilter> {
  const policy = { ...settings.policy, blocklistIds: settings.blocklists.map((b) => b.id) };
  if (policy.mode === "off") return new ContentFilter(policy, [], context.hooks);
  const classifiers: TextClassifier[] = [];
  if (policy.profanity || settings.blocklists.length > 0) {
    classifiers.push(createBlocklistClassifier({ profanity: policy.profanity, blocklists: settings.blocklists }));
  }
  try {
    for (const spec of settings.classifiers) classifiers.push(await createClassifier(spec, context, policy.timeoutMs));
  } catch (error) {
    await Promise.all(classifiers.map((c) => c.close?.()));
    throw error;
  }
  return new ContentFilter(policy, classifiers, context.hooks);
}

async function createClassifier(spec: ClassifierSettings, context: ContentFilterContext, timeoutMs: number): Promise<TextClassifier> {
  switch (spec.kind) {
    case "lexicon":
      return createLexiconClassifier({ builtIn: spec.builtIn, rules: spec.rules.map((r) => ({ pattern: r.pattern, isRegex: r.isRegex ?? false, category: r.category, severity: r.severity })) });
    case "onnx":
      return createOnnxTextClassifier({ folder: spec.folder, labels: spec.labels ?? KOALA_TEXT_MODERATION_LABELS, cutPoints: spec.cutPoints });
    case "guard": {
      const complete = context.guardCompletion(spec.deployment);
      return spec.format === "judge" ? createJudgeClassifier(complete) : createLlamaGuardClassifier(complete, { variant: spec.variant });
    }
    case "azure": {
      const key = context.env[spec.keyEnv];
      if (!key) throw new Error(`The azure content-safety classifier needs its key in the environment variable ${spec.keyEnv}.`);
      return createAzureContentSafetyClassifier({ endpoint: spec.endpoint, key, promptShields: spec.promptShields, blocklistNames: spec.blocklistNames, timeoutMs });
    }
  }
}
