"""What every HTML page of the package holds to: data enters as text, and only the page's own code runs.

The `report` pages (`siamese_xai.scale.gallery` for a split,
`siamese_xai.scale.pair_gallery` for a list of pairs) write their data for
the page's script with `script_json` and allow, through
`content_security_policy`, only their own script and stylesheet
(docs/escaping.md).
"""

from __future__ import annotations

import base64
import hashlib
import json


def script_json(value) -> str:
    """`value` as JSON that is safe inside an HTML `<script>` element.

    `<`, `>` and `&` are written as `\u003c`, `\u003e` and `\u0026` (the same
    JSON), so no string from the data can close the element (`</script>`) or
    open a comment (`<!--`); U+2028 and U+2029 are escaped too (`ensure_ascii`).
    """
    text = json.dumps(value, ensure_ascii=True, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def content_security_policy(style: str, script: str) -> str:
    """A page's Content-Security-Policy: its own script and stylesheet (by hash) and data: images, nothing else.

    Nothing is fetched (`default-src 'none'`), no other script runs (no inline
    handler, no `javascript:` URL, no injected `<script>`), and no style
    attribute applies; the page's script sets styles through the CSSOM, which
    the policy does not govern.

    Args:
        style: the text of the page's `<style>` element.
        script: the text of the page's one `<script>` element.
    """
    return (f"default-src 'none'; script-src {_sha256(script)}; style-src {_sha256(style)}; img-src data:; "
            "base-uri 'none'; form-action 'none'")


# The frame of every page: its policy, title and provenance line, then its body, then the paged gallery that the
# script fills (`SCRIPT_END`: render, "more"), the data for the script and the script.
_DOCUMENT = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<title>{title}</title>
<link rel="icon" href="data:,">
<style>{style}</style></head>
<body>
<h1>{title}</h1>
<div class="meta">{meta}</div>
{body}
<div id="gallery"></div>
<p><button id="more" type="button">more</button></p>
<script type="application/json" id="data">{data}</script>
<script>{script}</script>
</body></html>
"""

# The end of every page's script: draw `shown` of the rows `current()` gives as `item(row)` nodes, and the "more"
# button. The page's script defines `current`, `item` and `shown` before it.
SCRIPT_END = """
function render() {
  const rows = current();
  const items = document.createDocumentFragment();
  for (const r of rows.slice(0, shown)) items.appendChild(item(r));
  el("gallery").replaceChildren(items);
  el("count").textContent = `${Math.min(shown, rows.length)} of ${rows.length} shown`;
  el("more").style.display = rows.length > shown ? "" : "none";
}
el("more").addEventListener("click", () => { shown += DATA.pageSize; render(); });
render();
"""


def document(*, title: str, meta: str, style: str, body: str, data, script: str) -> str:
    """A whole page: `body` (HTML written by the caller, every piece of data in it escaped) between the page's
    heading and its gallery; `data` (JSON-ready) for `script`, which ends with `SCRIPT_END`.

    Args:
        title, meta: plain text (escaped here): the page's title and its provenance line.
        style: the text of the `<style>` element.
        body: HTML.
        data: the script's data, written with `script_json`.
        script: the text of the `<script>` element; the policy allows this one only.
    """
    import html

    return _DOCUMENT.format(csp=html.escape(content_security_policy(style, script)), title=html.escape(title),
                            meta=html.escape(meta), style=style, body=body, data=script_json(data), script=script)
