/**
 * Decides what a model file is: its catalog entry (template, system-role rule, Azure name, stop
 * tokens) when one matches, otherwise what the file's own metadata says.
 */
import { basename } from "node:path";
import { CATALOG, findCatalogModel, type CatalogModel } from "../catalog/phi-models.ts";
import { CHAT_TEMPLATES, templateSupportsSystemRole } from "../catalog/chat-templates.ts";
import type { ServedModel } from "../serving/served-model.ts";
import type { ModelFileFacts } from "../engine/engine-factory.ts";

/** Phi-3/3.5-vision crops per image when nothing says otherwise: the single-image setting, which matches Azure's counting. */
const DEFAULT_NUM_CROPS = 16;

export interface ServedModelPlan {
  model: ServedModel;
  catalog: CatalogModel | undefined;
  /** Token texts that end generation besides the file's EOG tokens. */
  extraStopTokens: string[];
  /** The model's own context window, when known. */
  modelContextLength: number | undefined;
  /** HD crops per image for a vision model (deployment setting, else catalog, else the export's own); undefined without vision. */
  numCrops: number | undefined;
}

/** The catalog entry whose id the file name or `general.name` contains (longest match wins). */
export function matchCatalogModel(modelPath: string, fileName: string | undefined): CatalogModel | undefined {
  const candidates = [basename(modelPath), fileName ?? ""].map((s) => s.toLowerCase().replaceAll("_", "-").replaceAll(" ", "-"));
  for (const text of candidates) {
    const hits = CATALOG.filter((m) => text.includes(m.id)).sort((a, b) => b.id.length - a.id.length);
    if (hits[0]) return hits[0];
  }
  return undefined;
}

/** Serving policies that shape what a deployment accepts. */
export interface ServingPolicy {
  /** `constrained` (default): JSON response formats are enforced by grammar; `azure`: 422 as Azure does for Phi. */
  jsonPolicy: "constrained" | "azure";
  /** Largest `n` accepted. */
  maxChoices: number;
  /** Offer tools to models without native tool calling, by constrained JSON. */
  toolEmulation: boolean;
  /** `azure`: translate system messages into user messages where Azure does; `native`: the template's own system turn when it has one. */
  systemRole: "azure" | "native";
}

export function planServedModel(
  modelPath: string,
  summary: ModelFileFacts,
  catalogId: string | undefined,
  deploymentName: string | undefined,
  policy: ServingPolicy,
  numCrops?: number | undefined,
): ServedModelPlan {
  const catalog = catalogId ? findCatalogModel(catalogId) : matchCatalogModel(modelPath, summary.name);
  if (catalogId && !catalog) throw new Error(`Unknown catalog model '${catalogId}'. Run 'phiserve models' to list them.`);
  const chatTemplate = catalog ? CHAT_TEMPLATES[catalog.chatTemplate] : summary.chatTemplate;
  if (!chatTemplate) {
    throw new Error(`${modelPath} has no chat template and matches no catalog model; pass --model-name <catalog name>.`);
  }
  const fallbackName = basename(modelPath).replace(/\.gguf$/i, "");
  // Images need an engine that reads them (the file says so) and a model that takes them.
  const supportsVision = summary.supportsVision === true && (catalog ? catalog.supportsVision : true);
  return {
    catalog,
    extraStopTokens: catalog ? [...catalog.stopTokens] : [],
    modelContextLength: summary.contextLength ?? catalog?.contextLength,
    numCrops: supportsVision ? (numCrops ?? catalog?.numCrops ?? summary.numCrops ?? DEFAULT_NUM_CROPS) : undefined,
    model: {
      deploymentName: deploymentName ?? catalog?.id ?? fallbackName,
      azureName: catalog?.azureName ?? summary.name ?? fallbackName,
      chatTemplate,
      supportsSystemRole: catalog && policy.systemRole === "azure" ? catalog.supportsSystemRole : templateSupportsSystemRole(chatTemplate),
      capabilities: {
        supportsVision,
        toolMode: catalog?.supportsTools && chatTemplate.includes("<|tool|>") ? "native" : policy.toolEmulation ? "emulated" : "none",
        supportsJsonOutput: policy.jsonPolicy === "constrained",
        maxChoices: policy.maxChoices,
      },
    },
  };
}
