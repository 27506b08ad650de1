/**
 * Downloads an image from an `http(s)` URL a request names, guarded against request forgery (docs/VISION.md
 * "Image URLs"): the host's addresses are resolved once and every one must be public (unless the operator
 * allows private ones); the connection goes to the address that was checked (a pinned `lookup`, so a DNS
 * answer that changes between check and connect cannot redirect it); redirects are followed by hand, at most
 * {@link MAX_REDIRECTS}, each checked the same way; the size is capped before and while reading; one deadline
 * covers everything; the response must say it is an image.
 */
import { lookup as dnsLookup } from "node:dns/promises";
import { request as httpRequest, type IncomingMessage, type RequestOptions } from "node:http";
import { request as httpsRequest } from "node:https";
import { isIP, type LookupFunction } from "node:net";
import { ImageError, formatBytes } from "./image-error.ts";

/** Redirects followed for one image (each target is checked like the first URL). */
export const MAX_REDIRECTS = 3;

export interface ImageFetchOptions {
  /** Largest image accepted, in bytes: a larger `Content-Length` is refused unread, a longer body is cut. */
  maxBytes: number;
  /** Deadline for the whole fetch (DNS, connect, redirects, body), ms. */
  timeoutMs: number;
  /** Allow loopback, private, link-local and other non-public addresses (trusted networks only). */
  allowPrivateAddresses: boolean;
}

export interface FetchedImage {
  bytes: Buffer;
  /** The response's `Content-Type` without parameters, lower-cased (always `image/…`). */
  declaredMime: string | undefined;
}

/** One resolved address of a host. */
export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** What {@link fetchImageWith} needs from the outside world (tests replace the resolver). */
export interface ImageFetchDeps {
  /** Every address of `hostname` (as `dns.lookup` with `all: true` gives them). */
  resolve(hostname: string): Promise<ResolvedAddress[]>;
  /** Why `address` must not be fetched from (a short category), or `undefined` when it is public. */
  forbiddenReason(address: string): string | undefined;
}

const SYSTEM_DEPS: ImageFetchDeps = {
  async resolve(hostname) {
    const found = await dnsLookup(hostname, { all: true, verbatim: true });
    return found.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
  },
  forbiddenReason: forbiddenAddressReason,
};

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * Fetches the image at `url` (http or https) within `options`' limits.
 *
 * @throws {@link ImageError} `forbidden_address` (a non-public address, unless allowed), `fetch_failed` (DNS,
 *   connection, HTTP status, deadline, redirects), `too_large`, `unsupported_format` (not an `image/*`
 *   response); when `signal` aborts, its reason.
 */
export function fetchImage(url: string, options: ImageFetchOptions, signal?: AbortSignal): Promise<FetchedImage> {
  return fetchImageWith(SYSTEM_DEPS, url, options, signal);
}

/** {@link fetchImage} with its resolver and address policy given (tests). */
export async function fetchImageWith(deps: ImageFetchDeps, url: string, options: ImageFetchOptions, signal?: AbortSignal): Promise<FetchedImage> {
  const deadline = AbortSignal.timeout(options.timeoutMs);
  const combined = signal === undefined ? deadline : AbortSignal.any([signal, deadline]);
  try {
    let target = parseHttpUrl(url, "The image URL");
    for (let redirects = 0; ; redirects += 1) {
      const pinned = await checkedAddress(deps, target, options, combined);
      const hop = await requestOnce(target, pinned, options.maxBytes, combined);
      if (hop.kind === "image") return hop.image;
      if (redirects >= MAX_REDIRECTS) throw new ImageError("fetch_failed", `The image URL redirected more than ${MAX_REDIRECTS} times.`);
      target = parseHttpUrl(new URL(hop.location, target).href, "The image URL redirected to a URL that");
    }
  } catch (error) {
    if (signal?.aborted === true) throw signal.reason;
    if (deadline.aborted) {
      throw new ImageError("fetch_failed", `The image URL did not deliver the image within ${options.timeoutMs / 1000} s.`, { cause: error });
    }
    if (error instanceof ImageError) throw error;
    throw new ImageError("fetch_failed", `The image URL could not be fetched (${networkCause(error)}).`, { cause: error });
  }
}

function parseHttpUrl(url: string, what: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ImageError("fetch_failed", `${what} is not a valid URL.`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new ImageError("fetch_failed", `${what} is not an http or https URL.`);
  }
  return parsed;
}

/** The host's address to connect to, after checking every address the host has. */
async function checkedAddress(deps: ImageFetchDeps, target: URL, options: ImageFetchOptions, signal: AbortSignal): Promise<ResolvedAddress> {
  const host = target.hostname.replace(/^\[(.*)\]$/, "$1");
  const literal = isIP(host);
  let addresses: ResolvedAddress[];
  if (literal !== 0) addresses = [{ address: host, family: literal === 6 ? 6 : 4 }];
  else {
    try {
      addresses = await abortable(deps.resolve(host), signal);
    } catch (error) {
      if (signal.aborted) throw error;
      throw new ImageError("fetch_failed", `The image URL's host ${JSON.stringify(host)} could not be resolved.`, { cause: error });
    }
  }
  const first = addresses[0];
  if (first === undefined) throw new ImageError("fetch_failed", `The image URL's host ${JSON.stringify(host)} has no address.`);
  if (!options.allowPrivateAddresses) {
    for (const { address } of addresses) {
      const reason = deps.forbiddenReason(address);
      if (reason !== undefined) {
        throw new ImageError(
          "forbidden_address",
          `The image URL's host ${JSON.stringify(host)} is a ${reason} address; this server only fetches images from public addresses.`,
        );
      }
    }
  }
  return first;
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** A `lookup` that answers every query with the address already checked. */
function pinnedLookup(pinned: ResolvedAddress): LookupFunction {
  return (_hostname, options, callback) => {
    if (typeof options === "object" && options.all === true) {
      (callback as unknown as (err: null, addresses: ResolvedAddress[]) => void)(null, [pinned]);
    } else {
      callback(null, pinned.address, pinned.family);
    }
  };
}

type Hop = { kind: "image"; image: FetchedImage } | { kind: "redirect"; location: string };

/** One GET to `target`, connected to `pinned`; follows nothing. */
function requestOnce(target: URL, pinned: ResolvedAddress, maxBytes: number, signal: AbortSignal): Promise<Hop> {
  const options: RequestOptions = {
    method: "GET",
    host: target.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: target.port === "" ? undefined : Number(target.port),
    path: `${target.pathname}${target.search}`,
    headers: { accept: "image/*", "accept-encoding": "identity", "user-agent": "phiserve-image-fetch" },
    lookup: pinnedLookup(pinned),
    agent: false,
    signal,
  };
  const send = target.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise<IncomingMessage>((resolve, reject) => {
    const req = send(options, resolve);
    req.once("error", reject);
    req.end();
  }).then((response) => readResponse(response, maxBytes));
}

async function readResponse(response: IncomingMessage, maxBytes: number): Promise<Hop> {
  try {
    const status = response.statusCode ?? 0;
    const location = response.headers.location;
    if (REDIRECTS.has(status) && location !== undefined) return { kind: "redirect", location };
    if (status !== 200) throw new ImageError("fetch_failed", `The image URL answered HTTP ${status}.`);
    const mime = (response.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
    if (!mime.startsWith("image/")) {
      const what = mime === "" ? "no content type" : `content of type ${JSON.stringify(mime.slice(0, 60))}`;
      throw new ImageError("unsupported_format", `The image URL returned ${what}, not an image.`);
    }
    const encoding = (response.headers["content-encoding"] ?? "identity").trim().toLowerCase();
    if (encoding !== "identity") throw new ImageError("fetch_failed", `The image URL sent the image ${encoding}-encoded; only unencoded images are accepted.`);
    const declared = Number(response.headers["content-length"] ?? Number.NaN);
    if (declared > maxBytes) {
      throw new ImageError("too_large", `The image at the URL is ${formatBytes(declared)}; the limit is ${formatBytes(maxBytes)}.`);
    }
    const bytes = await readCapped(response, maxBytes);
    if (Number.isFinite(declared) && bytes.length !== declared) {
      throw new ImageError("fetch_failed", `The image URL's response ended after ${bytes.length} of ${declared} bytes.`);
    }
    return { kind: "image", image: { bytes, declaredMime: mime } };
  } finally {
    response.destroy();
  }
}

async function readCapped(response: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of response) {
    const buffer = chunk as Buffer;
    total += buffer.length;
    if (total > maxBytes) throw new ImageError("too_large", `The image at the URL is larger than the limit of ${formatBytes(maxBytes)}.`);
    chunks.push(buffer);
  }
  return Buffer.concat(chunks, total);
}

function networkCause(error: unknown): string {
  const code = typeof error === "object" && error !== null && "code" in error ? String(error.code) : undefined;
  return code ?? (error instanceof Error ? error.message : String(error));
}

// ---------------------------------------------------------------------------------------------------------------
// Address policy

/** `[address bytes, prefix bits, category]`; the category completes "is a … address". */
type Block = readonly [bytes: readonly number[], bits: number, category: string];

/** A block given as text; parsed once at load. */
function block(text: string, bits: number, category: string): Block {
  const bytes = parseIPv4(text) ?? parseIPv6(text);
  if (bytes === undefined) throw new Error(`bad address block ${text}`);
  return [bytes, bits, category];
}

const V4_BLOCKS: readonly Block[] = [
  block("0.0.0.0", 8, "'this network'"),
  block("10.0.0.0", 8, "private"),
  block("100.64.0.0", 10, "shared (carrier-grade NAT)"),
  block("127.0.0.0", 8, "loopback"),
  block("169.254.0.0", 16, "link-local (cloud metadata)"),
  block("172.16.0.0", 12, "private"),
  block("192.0.0.0", 24, "reserved (IETF protocol assignments)"),
  block("192.0.2.0", 24, "documentation"),
  block("192.88.99.0", 24, "reserved (6to4 relay)"),
  block("192.168.0.0", 16, "private"),
  block("198.18.0.0", 15, "reserved (benchmarking)"),
  block("198.51.100.0", 24, "documentation"),
  block("203.0.113.0", 24, "documentation"),
  block("224.0.0.0", 4, "multicast"),
  block("240.0.0.0", 4, "reserved"),
];

const V6_BLOCKS: readonly Block[] = [
  block("::", 128, "unspecified"),
  block("::1", 128, "loopback"),
  block("64:ff9b:1::", 48, "local-use NAT64"),
  block("100::", 64, "reserved (discard)"),
  block("2001:db8::", 32, "documentation"),
  block("fc00::", 7, "unique-local (private)"),
  block("fe80::", 10, "link-local"),
  block("fec0::", 10, "site-local (private)"),
  block("ff00::", 8, "multicast"),
];

/** IPv6 ranges that carry an IPv4 address, and where: IPv4-mapped, IPv4-compatible, NAT64, 6to4. */
const V6_EMBEDDING_V4: readonly (readonly [prefix: readonly number[], bits: number, offset: number])[] = [
  [block("::ffff:0:0", 96, "")[0], 96, 12],
  [block("::", 96, "")[0], 96, 12],
  [block("64:ff9b::", 96, "")[0], 96, 12],
  [block("2002::", 16, "")[0], 16, 2],
];

/**
 * Why `address` (an IPv4 or IPv6 literal, a zone index allowed) is not a public address, as a short category
 * ("private", "loopback", "link-local (cloud metadata)", …), or `undefined` when it is public. IPv6 forms that
 * carry an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`)
 * are judged by that address. Anything unparsable counts as forbidden.
 */
export function forbiddenAddressReason(address: string): string | undefined {
  const v4 = parseIPv4(address);
  if (v4 !== undefined) return matchBlocks(v4, V4_BLOCKS);
  const v6 = parseIPv6(address);
  if (v6 === undefined) return "unrecognised";
  const own = matchBlocks(v6, V6_BLOCKS);
  if (own !== undefined) return own;
  for (const [prefix, bits, offset] of V6_EMBEDDING_V4) {
    if (hasPrefix(v6, prefix, bits)) return matchBlocks(v6.slice(offset, offset + 4), V4_BLOCKS);
  }
  return undefined;
}

function matchBlocks(bytes: readonly number[], blocks: readonly Block[]): string | undefined {
  return blocks.find(([prefix, bits]) => hasPrefix(bytes, prefix, bits))?.[2];
}

function hasPrefix(bytes: readonly number[], prefix: readonly number[], bits: number): boolean {
  for (let i = 0; i < bits; i += 8) {
    const mask = bits - i >= 8 ? 0xff : (0xff << (8 - (bits - i))) & 0xff;
    if (((bytes[i / 8] ?? 0) & mask) !== ((prefix[i / 8] ?? 0) & mask)) return false;
  }
  return true;
}

/** Dotted-quad IPv4 (as `net.isIPv4` accepts it) to 4 bytes. */
function parseIPv4(text: string): number[] | undefined {
  if (isIP(text) !== 4) return undefined;
  return text.split(".").map(Number);
}

/** IPv6 (`::` shorthand, dotted IPv4 tail and `%zone` allowed) to 16 bytes. */
function parseIPv6(text: string): number[] | undefined {
  const bare = text.replace(/%.*$/, "");
  if (isIP(bare) !== 6) return undefined;
  let groups = bare;
  const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(bare)?.[1];
  if (tail !== undefined) {
    const [a, b, c, d] = tail.split(".").map(Number) as [number, number, number, number];
    groups = `${bare.slice(0, -tail.length)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = "", rest] = groups.split("::");
  const headParts = head === "" ? [] : head.split(":");
  const restParts = rest === undefined || rest === "" ? [] : rest.split(":");
  const zeros = rest === undefined ? [] : new Array<string>(8 - headParts.length - restParts.length).fill("0");
  const words = [...headParts, ...zeros, ...restParts].map((w) => parseInt(w, 16));
  if (words.length !== 8) return undefined;
  return words.flatMap((w) => [w >> 8, w & 0xff]);
}
