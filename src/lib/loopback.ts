/**
 * The one loopback rule. `serve` uses it to decide whether an unauthenticated server may bind a
 * host, and JWT verification uses it to decide whether a key-source URL may be plain `http:`.
 * Both questions are the same ("can traffic to this host leave the machine?"), so one function
 * answers both: two rules that disagree let a host pass one check and fail the other.
 */
import { BlockList, isIP } from "node:net";

/**
 * 127.0.0.0/8 and ::1. BlockList also matches IPv4-mapped IPv6 forms (`::ffff:127.0.0.2`,
 * `::ffff:7f00:2`, which is how `new URL()` writes the former) against the IPv4 subnet.
 * Built once and never changed afterwards: a constant table, not shared mutable state.
 */
const LOOPBACK_RANGES = new BlockList();
LOOPBACK_RANGES.addSubnet("127.0.0.0", 8, "ipv4");
LOOPBACK_RANGES.addAddress("::1", "ipv6");

/**
 * True when `host` names this machine only: `localhost` (any case), any address in 127.0.0.0/8,
 * `::1`, or an IPv4-mapped `::ffff:127.x.x.x`; IPv6 may be bracketed (`[::1]`, as in a URL's
 * `hostname`). Anything else is false, including `0.0.0.0`/`::` (every interface), other
 * hostnames (DNS may point them anywhere, so a name is trusted only when it is `localhost`) and
 * strings that are not addresses at all.
 */
export function isLoopbackHost(host: string): boolean {
  if (host.toLowerCase() === "localhost") return true;
  const bracketed = host.startsWith("[") && host.endsWith("]");
  const address = bracketed ? host.slice(1, -1) : host;
  const family = isIP(address);
  // Brackets enclose IPv6 only (RFC 3986 IP-literal); "[127.0.0.1]" is not a host.
  if (family === 6) return LOOPBACK_RANGES.check(address, "ipv6");
  return family === 4 && !bracketed && LOOPBACK_RANGES.check(address, "ipv4");
}
