"""The page at `/`: plain server-rendered HTML, its style and a little script inline.

Nothing is loaded from elsewhere (the CSP allows only this page's own nonce-marked script and
style, and requests back to this server). Results are written with `textContent` and DOM
nodes, never as HTML, so a pasted text or a bundle's model card cannot inject markup.
"""

from __future__ import annotations

from html import escape

STYLE = """
body { font: 16px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 60rem; padding: 1rem 1.5rem; color: #1d1d1f; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; } h2 { font-size: 1.15rem; margin-top: 1.6rem; }
.lede { color: #555; margin-top: 0; }
section { border: 1px solid #d0d4da; border-radius: 8px; padding: .8rem 1rem 1rem; margin: 1rem 0; }
section h2 { margin-top: .3rem; }
textarea { width: 100%; box-sizing: border-box; min-height: 9rem; font: 14px/1.4 ui-monospace, monospace; }
button { font-size: 1rem; padding: .35rem 1rem; margin-top: .5rem; cursor: pointer; }
.drop { border: 2px dashed #9aa3ad; border-radius: 8px; padding: 1rem; margin-top: .7rem; text-align: center; color: #555; }
.drop.over { background: #eef5ff; border-color: #3b7ddd; }
.result { margin-top: .8rem; }
.verdict { display: inline-block; font-weight: 700; font-size: 1.2rem; padding: .15rem .6rem; border-radius: 6px; }
.verdict.yes { background: #fde2c8; color: #8a3b00; } .verdict.no { background: #dff3e3; color: #14532d; }
.verdict.unsure { background: #eceff3; color: #333; } .verdict.ok { background: #dff3e3; color: #14532d; }
.verdict.bad { background: #fde0e0; color: #8b1111; } .error { color: #8b1111; font-weight: 600; }
.facts { color: #333; margin: .4rem 0; } .facts span { margin-right: 1.2rem; }
.textview { white-space: pre-wrap; border: 1px solid #e2e5e9; border-radius: 6px; padding: .6rem; font: 14px/1.5 ui-monospace, monospace; max-height: 20rem; overflow: auto; }
mark { background: #ffd59e; }
code, .mono { font-family: ui-monospace, monospace; font-size: .9em; word-break: break-all; }
footer { color: #666; font-size: .85rem; margin-top: 2rem; }
"""

SCRIPT = r"""
"use strict";
const $ = (id) => document.getElementById(id);
const MAX_TEXT = Number(document.body.dataset.maxText), MAX_BUNDLE = Number(document.body.dataset.maxBundle);

async function call(url, body, type) {
  const response = await fetch(url, {method: "POST", body: body, headers: {"Content-Type": type}});
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) throw new Error((data && data.error) || ("HTTP " + response.status));
  return data;
}
function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}
function showError(box, error) { box.replaceChildren(el("p", error.message || String(error), "error")); }
function verdictClass(verdict) {
  return {"watermarked": "yes", "not watermarked": "no", "verified": "ok", "not verified": "bad"}[verdict] || "unsure";
}

function showText(text, answer, fileName) {
  const box = $("text-result");
  const verdict = el("span", answer.verdict, "verdict " + verdictClass(answer.verdict));
  verdict.id = "text-verdict";
  const facts = el("p", null, "facts");
  facts.append(el("span", "p-value " + (answer.p_value !== undefined ? answer.p_value.toExponential(2) : answer.p_value_label)));
  facts.append(el("span", answer.tokens_scored + " tokens scored"));
  if (answer.key_id) facts.append(el("span", "key " + answer.key_id));
  const nodes = [verdict, facts];
  if (fileName) facts.prepend(el("span", "file " + fileName));
  if (answer.verdict === "insufficient evidence") {
    nodes.push(el("p", "Too short for a verdict: at least " + answer.min_tokens + " scored tokens are needed."));
  }
  if (answer.spans.length) {
    nodes.push(el("p", answer.spans.length + " marked span(s), highlighted:"));
    const view = el("div", null, "textview");
    view.id = "text-view";
    const chars = Array.from(text);  // span offsets count code points, as the server's do
    let at = 0;
    for (const span of answer.spans) {
      if (span.start_char > at) view.append(chars.slice(at, span.start_char).join(""));
      view.append(el("mark", chars.slice(span.start_char, span.end_char).join("")));
      at = span.end_char;
    }
    if (at < chars.length) view.append(chars.slice(at).join(""));
    nodes.push(view);
  }
  box.replaceChildren(...nodes);
}

async function detect(body, type, shownText, fileName) {
  const box = $("text-result");
  box.replaceChildren(el("p", "checking…"));
  try { showText(shownText, await call("/api/v1/detect", body, type), fileName); } catch (error) { showError(box, error); }
}

function showBundle(answer) {
  const box = $("bundle-result");
  const verdict = el("span", answer.verdict, "verdict " + verdictClass(answer.verdict));
  verdict.id = "bundle-verdict";
  const nodes = [verdict];
  if (answer.signer_fingerprint) {
    const signer = el("p", "signed by ");
    signer.append(el("code", answer.signer_fingerprint));
    nodes.push(signer);
  }
  if (answer.files !== null && answer.files !== undefined) {
    nodes.push(el("p", answer.files + " files, " + Number(answer.bytes).toLocaleString() + " bytes checked", "facts"));
  }
  if (answer.reasons.length) {
    const list = el("ul");
    list.id = "bundle-reasons";
    for (const reason of answer.reasons) list.append(el("li", reason));
    nodes.push(list);
  }
  const card = answer.model_card;
  if (card) {
    // an unverified bundle's card is whatever its sender wrote: say so
    const trust = answer.verified ? "" : " (from a bundle that did not verify: do not trust it)";
    nodes.push(el("h3", "Model card" + (card.title ? ": " + card.title : "") + trust));
    if (card.summary) nodes.push(el("p", card.summary));
    const facts = el("p", null, "facts");
    for (const name of ["license", "library_name", "base_model"]) if (card[name]) facts.append(el("span", name + ": " + card[name]));
    nodes.push(facts);
  }
  box.replaceChildren(...nodes);
}

async function verify(file) {
  const box = $("bundle-result");
  if (file.size > MAX_BUNDLE) return showError(box, new Error("file too large: the limit is " + MAX_BUNDLE.toLocaleString() + " bytes"));
  box.replaceChildren(el("p", "verifying " + file.name + "…"));
  try { showBundle(await call("/api/v1/verify", file, "application/x-tar")); } catch (error) { showError(box, error); }
}

async function textFile(file) {
  if (file.size > MAX_TEXT) return showError($("text-result"), new Error("file too large: the limit is " + MAX_TEXT.toLocaleString() + " bytes"));
  const bytes = await file.arrayBuffer();
  let shown = "";
  try { shown = new TextDecoder("utf-8", {fatal: true}).decode(bytes); } catch (e) { shown = ""; }
  await detect(bytes, "text/plain; charset=utf-8", shown, file.name);
}

function dropZone(zone, input, handle) {
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault(); zone.classList.remove("over");
    if (event.dataTransfer.files.length) handle(event.dataTransfer.files[0]);
  });
  input.addEventListener("change", () => { if (input.files.length) handle(input.files[0]); });
}

$("check-text").addEventListener("click", () => {
  const text = $("text").value;
  if (!text.trim()) return showError($("text-result"), new Error("paste a text first"));
  detect(text, "text/plain; charset=utf-8", text);
});
dropZone($("text-drop"), $("text-file"), textFile);
dropZone($("bundle-drop"), $("bundle-file"), verify);
"""

TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>mintline verification</title>
<style nonce="{nonce}">{style}</style>
</head>
<body data-max-text="{max_text}" data-max-bundle="{max_bundle}">
<h1>mintline verification</h1>
<p class="lede">Is a text watermarked by a published key? Is a model release genuine? Checked here with the
publisher's keys; nothing you send is stored.</p>

<section id="text-section">
<h2>Is this text watermarked?</h2>
<label for="text">Paste a text:</label>
<textarea id="text" spellcheck="false" placeholder="Paste the text to check here"></textarea>
<button id="check-text" type="button">Check text</button>
<div id="text-drop" class="drop">…or drop a text file here, or <label><u>choose one</u>
<input id="text-file" type="file" accept=".txt,text/plain" hidden></label></div>
<div id="text-result" class="result" aria-live="polite"></div>
</section>

<section id="bundle-section">
<h2>Is this release genuine?</h2>
<div id="bundle-drop" class="drop">Drop a release bundle (<code>.tar</code>) here, or <label><u>choose one</u>
<input id="bundle-file" type="file" accept=".tar,application/x-tar" hidden></label></div>
<div id="bundle-result" class="result" aria-live="polite"></div>
</section>

<h2>Published keys</h2>
<p>Watermark keys (detection at a false-positive rate of {fpr:g}, at least {min_tokens} scored tokens):</p>
<ul>{watermark_keys}</ul>
<p>Release signers (SHA-256 fingerprints of their public keys):</p>
<ul>{signers}</ul>

<footer>
Answers are {detail_note} Requests are limited per client{limits_note}. Texts up to {max_text:,} bytes,
bundles up to {max_bundle:,} bytes. API: <a href="/docs">/docs</a>.
</footer>
<script nonce="{nonce}">{script}</script>
</body>
</html>
"""


def render_page(*, nonce: str, watermark_keys: list[dict], signers: list[dict], settings, detection) -> str:
    keys_html = "".join(f"<li><code>{escape(k['key_id'])}</code> ({escape(k['scheme'])})</li>" for k in watermark_keys)
    signers_html = "".join(
        f"<li><code>{escape(s['fingerprint'])}</code> ({escape(s['algorithm'])})</li>" for s in signers
    )
    detail_note = (
        "exact (p-values and z-scores)." if settings.detail == "full" else "coarse: verdicts and p-value ranges."
    )
    limits = []
    if settings.rate_limit:
        limits.append(f"{settings.rate_limit:g} per minute")
    if settings.query_budget:
        limits.append(f"{settings.query_budget} queries per {settings.budget_hours:g} h")
    return TEMPLATE.format(
        nonce=escape(nonce),
        style=STYLE,
        script=SCRIPT,
        max_text=settings.max_text_bytes,
        max_bundle=settings.max_bundle_bytes,
        fpr=detection.fpr,
        min_tokens=detection.min_tokens,
        watermark_keys=keys_html,
        signers=signers_html,
        detail_note=detail_note,
        limits_note=(": " + ", ".join(limits)) if limits else "",
    )


def page_csp(nonce: str) -> str:
    return (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; connect-src 'self'; "
        "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )
