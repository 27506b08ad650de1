#!/usr/bin/env bash
# Fetches the official Python clients the integration tests run (Microsoft's `azure-ai-inference`
# 1.0.0b9 with `azure-core`, and the `openai` SDK) as Debian 13 "trixie" packages, with no PyPI:
#
#   PYTHONPATH="$(bash scripts/python-clients.sh)" python3 -c "import azure.ai.inference, openai"
#
# prints, on stdout, the one folder to put on PYTHONPATH (.cache/python/site, absolute).
#
# How: a private apt state under .cache/python/apt (its own sources.list naming trixie's main
# component on the machine's Debian mirror, its own lists and archive cache) → `apt-get download`
# → `dpkg-deb -x` → the packages' dist-packages copied into the site folder. The system's apt
# configuration, lists and installed packages are left alone; nothing is installed and no root is
# needed beyond what `apt-get download` asks. Trixie builds its compiled modules for Python 3.13:
# on another Python their extensions are not found and aiohttp, yarl, multidict, frozenlist and
# propcache run their pure-Python fallbacks; pydantic (compiled, for openai) must already be
# importable. A dependency the machine's python3 already imports is not fetched (so a newer
# pip-installed one is not shadowed). Idempotent: once the site folder is complete for the wanted
# package set, it prints the path and touches no network (offline-safe).
# Overrides: PHISERVE_PYTHON_CACHE (default .cache/python), PHISERVE_DEBIAN_MIRROR (default: the
# Debian mirror the system's apt sources name, else http://deb.debian.org/debian), PYTHON (python3).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="$(mkdir -p "${PHISERVE_PYTHON_CACHE:-.cache/python}" && cd "${PHISERVE_PYTHON_CACHE:-.cache/python}" && pwd)"
SITE="$CACHE/site"
PYTHON="${PYTHON:-python3}"
SUITE=trixie

log() { printf 'python-clients: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found"

# Debian package → the module it provides. The first two are always fetched (they are what is tested:
# the exact versions trixie ships); the others only when the machine's python3 lacks them.
ALWAYS=("python3-azure:azure.ai.inference" "python3-openai:openai")
DEPENDENCIES=(
  python3-isodate:isodate python3-typing-extensions:typing_extensions
  python3-requests:requests python3-urllib3:urllib3 python3-idna:idna python3-certifi:certifi
  python3-charset-normalizer:charset_normalizer python3-six:six
  python3-httpx:httpx python3-httpcore:httpcore python3-h11:h11 python3-anyio:anyio python3-sniffio:sniffio
  python3-distro:distro python3-tqdm:tqdm
  python3-aiohttp:aiohttp python3-yarl:yarl python3-multidict:multidict python3-frozenlist:frozenlist
  python3-aiosignal:aiosignal python3-propcache:propcache python3-aiohappyeyeballs:aiohappyeyeballs
  python3-async-timeout:async_timeout python3-attr:attr
)

"$PYTHON" -c "import pydantic, sys; sys.exit(0 if int(pydantic.VERSION.split('.')[0]) >= 2 else 1)" 2>/dev/null \
  || die "the openai SDK needs pydantic 2 importable by $PYTHON (compiled: trixie's is built for Python 3.13 only)"

packages=()
for entry in "${ALWAYS[@]}"; do packages+=("${entry%%:*}"); done
for entry in "${DEPENDENCIES[@]}"; do
  "$PYTHON" -c "import ${entry#*:}" >/dev/null 2>&1 || packages+=("${entry%%:*}")
done
wanted="$(printf '%s\n' "${packages[@]}" | sort)"

if [ -f "$SITE/.complete" ] && [ "$(cat "$SITE/.complete")" = "$wanted" ]; then
  echo "$SITE"
  exit 0
fi

# The mirror the system already uses for Debian (its deb822 or one-line sources), else the default.
mirror() {
  if [ -n "${PHISERVE_DEBIAN_MIRROR:-}" ]; then echo "$PHISERVE_DEBIAN_MIRROR"; return; fi
  local found
  found="$(grep -hoE '(https?://[^ ]+/debian)/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | grep -v -- '-security' | head -n 1 | tr -d ' ' || true)"
  echo "${found:-http://deb.debian.org/debian}"
}

APT_DIR="$CACHE/apt"
mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/archives/partial" "$CACHE/debs"
touch "$APT_DIR/status"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$KEYRING" ] || die "$KEYRING missing (package debian-archive-keyring)"
echo "deb [signed-by=$KEYRING] $(mirror) $SUITE main" >"$APT_DIR/sources.list"
apt_opts=(
  -o "Dir::Etc::SourceList=$APT_DIR/sources.list" -o "Dir::Etc::SourceParts=$APT_DIR/none"
  -o "Dir::Etc::Preferences=$APT_DIR/none" -o "Dir::Etc::PreferencesParts=$APT_DIR/none"
  -o "Dir::State=$APT_DIR" -o "Dir::State::Lists=$APT_DIR/lists" -o "Dir::State::status=$APT_DIR/status"
  -o "Dir::Cache=$APT_DIR" -o "Dir::Cache::Archives=$APT_DIR/archives"
  -o "APT::Architecture=amd64" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=$(id -un)"
)

# Download what is missing (a package already in debs/ is not fetched again).
missing=()
for p in "${packages[@]}"; do compgen -G "$CACHE/debs/${p}_*.deb" >/dev/null || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  log "fetching ${missing[*]} from Debian $SUITE ($(mirror))"
  apt_log="$(mktemp)"
  if ! { apt-get "${apt_opts[@]}" -qq update && (cd "$CACHE/debs" && apt-get "${apt_opts[@]}" -qq download "${missing[@]}"); } >"$apt_log" 2>&1; then
    tail -n 20 "$apt_log" >&2
    rm -f "$apt_log"
    die "apt-get download failed (no network? the cache is $CACHE)"
  fi
  rm -f "$apt_log"
fi

# Extract into a fresh folder, then swap it in, so an interrupted run never leaves a half site.
rm -rf "$SITE.new" "$CACHE/extract"
mkdir -p "$SITE.new"
for p in "${packages[@]}"; do
  deb="$(compgen -G "$CACHE/debs/${p}_*.deb" | sort -V | tail -n 1)"
  mkdir -p "$CACHE/extract"
  dpkg-deb -x "$deb" "$CACHE/extract"
  if [ -d "$CACHE/extract/usr/lib/python3/dist-packages" ]; then
    cp -a "$CACHE/extract/usr/lib/python3/dist-packages/." "$SITE.new/"
  fi
  rm -rf "$CACHE/extract"
done
# python3-azure is the whole Azure SDK (about 150 MB unpacked): keep what the tests import.
if [ -d "$SITE.new/azure" ]; then
  find "$SITE.new/azure" -mindepth 1 -maxdepth 1 ! -name core ! -name ai ! -name __init__.py -exec rm -rf {} +
  find "$SITE.new/azure/ai" -mindepth 1 -maxdepth 1 ! -name inference ! -name __init__.py -exec rm -rf {} +
fi
PYTHONPATH="$SITE.new" "$PYTHON" -c "import azure.ai.inference, azure.core, openai, aiohttp" \
  || die "the extracted clients do not import on $("$PYTHON" --version 2>&1)"
rm -rf "$SITE"
mv "$SITE.new" "$SITE"
echo "$wanted" >"$SITE/.complete"
log "ready: azure-ai-inference $(PYTHONPATH="$SITE" "$PYTHON" -c 'from azure.ai.inference import _version; print(_version.VERSION)'), openai $(PYTHONPATH="$SITE" "$PYTHON" -c 'import openai; print(openai.__version__)')"
echo "$SITE"
