#!/usr/bin/env bash
# mypy over the promkit package as it is installed: instrument/ and exporters/
# are promkit.instrument and promkit.exporters (pyproject's package-dir), a
# mapping mypy cannot read. So mypy runs on a tree of links laid out like the
# wheel, and its messages name the repository's own paths.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tree=${TYPECHECK_TREE:-$root/.venv/typecheck}
rm -rf "$tree"
mkdir -p "$tree/promkit"
for entry in "$root"/promkit/*; do
  [ "$(basename "$entry")" = "__pycache__" ] || ln -s "$entry" "$tree/promkit/"
done
ln -s "$root/instrument" "$tree/promkit/instrument"
ln -s "$root/exporters" "$tree/promkit/exporters"
cd "$tree"
"$root/.venv/bin/mypy" --config-file "$root/pyproject.toml" --cache-dir "$root/.mypy_cache" "$@" \
  | sed -e 's#^promkit/instrument/#instrument/#' -e 's#^promkit/exporters/#exporters/#'
