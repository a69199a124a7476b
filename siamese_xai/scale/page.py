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
