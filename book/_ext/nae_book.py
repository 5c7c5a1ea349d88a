"""Small Sphinx fixes for the book (loaded through _config.yml's local_extensions).

* Jupyter Book 1.0.4 with sphinx-thebe 0.3.1 adds the inline thebe configuration script
  twice to every page, which throws "Identifier 'THEBE_JS_URL' has already been
  declared" in the browser; this extension drops repeated scripts.
* sphinx-book-theme leaves pydata-sphinx-theme's ``default_mode`` empty, which logs
  "Got invalid theme mode" on every page; we set it to "auto".
"""


def _key(js):
    attrs = getattr(js, "attributes", {}) or {}
    return (getattr(js, "filename", str(js)) or "", tuple(sorted((k, str(v)) for k, v in attrs.items())))


def _dedup_scripts(app, pagename, templatename, context, doctree):
    # pydata-sphinx-theme logs "Got invalid theme mode" when no default mode is set
    if not context.get("default_mode"):
        context["default_mode"] = "auto"
    files = context.get("script_files")
    if not files:
        return
    seen, out = set(), []
    for js in files:
        k = _key(js)
        if k in seen:
            continue
        seen.add(k)
        out.append(js)
    files[:] = out


def setup(app):
    app.connect("html-page-context", _dedup_scripts, priority=100)  # early: html-page-context stops at the first handler returning a template
    return {"parallel_read_safe": True, "parallel_write_safe": True}
