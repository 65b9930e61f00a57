"""A run as one self-contained static HTML file: ``xbench report RUN_DIR --html report.html``.

What it holds: the run's facts (suite, config hash, versions, commit), the cross-task Friedman /
Nemenyi table, and per task the summary and family tables (sortable by clicking a header; cells
give the mean, the 95% bootstrap CI and the rank group), the plots (PNG, inlined as data: URIs) and
an example viewer (each feature coloured by its attribution for a chosen explainer, the gold
rationale underlined, the model's prediction and confidence shown).

Safety: every string from the run (dataset text, task and explainer names, notes) goes into the
page either through :func:`html.escape` or as data that the script puts on the page with
``textContent``, never as markup. The viewer's data sits in a ``<script type="application/json">``
block with ``<``, ``>`` and ``&`` written as JSON escapes, so no text can close the block. A
Content-Security-Policy allows no network at all, and only the page's own script (by its sha256).

The page is written by hand (no template engine): pandas' ``to_html`` has no per-cell sort keys,
and a dependency-free page is what makes the file openable anywhere, offline.
"""
from __future__ import annotations

import base64
import hashlib
import html
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xbench.core.errors import XBenchError
from xbench.core.io import atomic_write_text
from xbench.results.leaderboard import (
    ARROW,
    MODALITY_SHARE,
    NOT_SCORED,
    across_tasks,
    explainer_order,
    family_order,
    load_leaderboard,
    modality_shares,
    task_summary,
)
from xbench.results.rundir import RunDir

#: examples per task in the viewer (the file grows with each one)
DEFAULT_EXAMPLES = 20


def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _num(v: Any, digits: int = 3) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return _e(v)
    if not np.isfinite(f):
        return "–"
    return f"{f:.{digits}g}" if abs(f) >= 1000 or (f != 0 and abs(f) < 1e-3) else f"{round(f, digits) + 0.0:.{digits}f}"


def _sortkey(v: Any) -> str:
    """The value a column sorts by (``data-v``): numbers as repr, missing as empty (sorted last)."""
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return ""
    return _e(v)


def _table(headers: list[tuple[str, str]], rows: list[list[tuple[str, Any]]], cls: str = "sortable",
           caption: str = "") -> str:
    """A table whose ``<th>`` click sorts by each cell's ``data-v``. ``headers``: (label, title);
    ``rows``: cells as (escaped html, sort key)."""
    head = "".join(f'<th scope="col" title="{_e(t)}">{_e(h)}</th>' for h, t in headers)
    body = "".join("<tr>" + "".join(f'<td data-v="{_sortkey(k)}">{h}</td>' for h, k in r) + "</tr>" for r in rows)
    cap = f"<caption>{_e(caption)}</caption>" if caption else ""
    return f'<div class="wide"><table class="{cls}">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img alt="{_e(alt)}" src="data:image/png;base64,{data}"><figcaption>{_e(alt)}</figcaption></figure>'


def _family_table(g: pd.DataFrame, fam: str, order: list[str]) -> str:
    fg = g[g["family"] == fam]
    metrics = list(dict.fromkeys(fg["metric"]))
    heads = [("explainer", "explainer")] + [
        (f"{m} {ARROW.get(fg.loc[fg['metric'] == m, 'direction'].iloc[0], '')}",
         f"{m}: {fg.loc[fg['metric'] == m, 'direction'].iloc[0]} is better; click to sort") for m in metrics]
    cells = {(r["explainer"], r["metric"]): r for r in fg.to_dict("records")}
    rows = []
    for e in order:
        if not any((e, m) in cells for m in metrics):
            continue
        row = [(_e(e), e)]
        for m in metrics:
            r = cells.get((e, m))
            row.append(('<span class="na">n/a</span>', None) if r is None else _cell(r))
        rows.append(row)
    return f"<h4>{_e(fam)}</h4>" + _table(heads, rows, caption=f"{fam}: mean [95% CI] #rank group")


def _cell(r: Any) -> tuple[str, Any]:
    """A leaderboard row's cell (html, sort key): mean [CI] #rank group, failures; a metric that
    skipped every example says so (it counts in no rank)."""
    if not r["n"] and not r["n_failed"] and r["n_skipped"]:
        return f'<span class="na">{_e(NOT_SCORED)}</span>', None
    fail = f' <span class="fail">({int(r["n_failed"])} failed)</span>' if r["n_failed"] else ""
    return (f'{_num(r["mean"])} <span class="ci">[{_num(r["ci_low"])}, {_num(r["ci_high"])}]</span> '
            f'<span class="rg" title="rank group">#{_e(r["rank_group"])}</span>{fail}', float(r["mean"]))


def _modality_share_html(g: pd.DataFrame, info: dict[str, Any] | None) -> str:
    """The task's "modality share" table (:func:`~xbench.results.leaderboard.modality_shares`), '' if none."""
    ms = modality_shares(g, info)
    if ms.empty:
        return ""
    heads = [("explainer", "explainer"),
             ("explainer text share", "mean over the scored examples of Σ_text |a| / Σ |a|"),
             ("model text share", "mean over the scored examples of |φ_T| / (|φ_T| + |φ_I|), the model's exact "
                                  "two-player Shapley values over image and text"),
             (f"{MODALITY_SHARE} ↓", "mean |T̂ − T| over the examples [95% CI] #rank group; lower is better")]
    rows = [[(_e(r["explainer"]), r["explainer"]),
             (_num(r["explainer_text_share"]), r["explainer_text_share"]),
             (_num(r["model_text_share"]), r["model_text_share"]), _cell(r)] for r in ms.to_dict("records")]
    return "<h4>modality share</h4>" + _table(
        heads, rows, caption="modality share: the explainer's and the model's mean text share, and the mean "
                             "per-example gap |T̂ − T| (not the difference of the two means)")


def _summary_html(summary: pd.DataFrame, task: str) -> str:
    g = summary[summary["task"] == task].drop(columns="task").dropna(axis=1, how="all")
    cols = [c for c in g.columns if c != "explainer"]
    heads = [("explainer", "explainer")] + [(c.replace("rank_", "rank: ") if c != "rank_1" else "rank 1 in", c)
                                            for c in cols]
    rows = []
    for _, r in g.iterrows():
        row = [(_e(r["explainer"]), r["explainer"])]
        for c in cols:
            v = r[c]
            if c == "dominated":
                text = "" if pd.isna(v) else ("dominated" if v else "Pareto front")
                row.append((_e(text), text))
            elif c == "rank_1":  # "k/M": sorts by k
                row.append((_e(v), float(str(v).split("/")[0]) if isinstance(v, str) else None))
            else:
                row.append((_num(v, 2 if c != "seconds" else 3), float(v) if pd.notna(v) else None))
        rows.append(row)
    return _table(heads, rows, caption="mean rank per family and overall (1 = best), metrics tied for rank 1, "
                                       "anchored faithfulness, seconds per example, Pareto front")


def _viewer_data(run_dir: Path, tasks: list[str], n_examples: int,
                 order: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """Per task: the first ``n_examples`` examples (from ``examples/<task>.json``) and each explainer's
    attributions for them (from ``explanations/<task>/*.npz``), rounded to 4 significant digits;
    explainers in ``order[task]`` (best first) where given, the rest after them by name."""
    out: dict[str, Any] = {}
    for task in tasks:
        f = run_dir / "examples" / f"{task}.json"
        if not f.exists():
            continue
        data = json.loads(f.read_text())
        exs = data["examples"][:n_examples]
        attrs: dict[str, list[list[float | None]]] = {}
        files = {f.stem: f for f in sorted((run_dir / "explanations" / task).glob("*.npz"))}
        first = [e for e in (order or {}).get(task, []) if e in files]
        for npz in [files[e] for e in first] + [f for e, f in files.items() if e not in first]:
            with np.load(npz, allow_pickle=False) as z:
                lengths, flat, ids = z["lengths"], z["flat"], [str(i) for i in z["ids"]]
            ends = np.cumsum(lengths)
            by_id = {i: (int(e - n), int(e)) for i, n, e in zip(ids, lengths, ends)}
            rows = []
            for ex in exs:
                lo, hi = by_id.get(ex["id"], (0, 0))
                rows.append([float(f"{v:.4g}") if np.isfinite(v) else None for v in flat[lo:hi]])
            attrs[npz.stem] = rows
        out[task] = {k: v for k, v in data.items() if k != "examples"} | {"examples": exs, "attributions": attrs}
    return out


def _json_for_script(obj: Any) -> str:
    """JSON that cannot end or alter its ``<script>`` block: <, > and & as \\u escapes."""
    s = json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return s.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e") \
        .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0 auto;max-width:1280px;
padding:0 1.2em 3em;color:#1b1b1b}
h1{margin:.6em 0 .2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
.wide{overflow-x:auto}table{border-collapse:collapse;margin:.5em 0 1.2em;font-size:12.5px}
caption{text-align:left;color:#555;font-size:12px;padding-bottom:.2em}
th,td{border:1px solid #d6d6d6;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f3f4f6;cursor:pointer;user-select:none;white-space:nowrap}
th[aria-sort=ascending]::after{content:" ▲"}th[aria-sort=descending]::after{content:" ▼"}
tbody tr:nth-child(even){background:#fafafa}.ci{color:#666}.rg{color:#0b5394;font-weight:600}
.na{color:#999}.fail{color:#b00}.flag{color:#8a5300}
figure{display:inline-block;margin:.4em 1em .8em 0;vertical-align:top}figure img{max-width:620px;height:auto}
figcaption{font-size:12px;color:#555}
.facts td:first-child{font-weight:600}
#viewer{border:1px solid #ccc;padding:.8em;border-radius:6px;background:#fcfcfc}
#viewer label{margin-right:1em}
#xb-tokens{line-height:2.1;margin-top:.6em;font-family:ui-monospace,Menlo,Consolas,monospace}
.tok{padding:2px 3px;margin:0 2px;border-radius:3px;white-space:pre}
.tok.gold{text-decoration:underline;text-decoration-thickness:2px;text-underline-offset:3px}
.tok.target{border:1px solid #555;font-weight:bold}
.grid{display:inline-grid;gap:1px;margin:.4em 1.2em .4em 0;vertical-align:top}.grid div{width:14px;height:14px}
.grid div.gold{outline:2px solid #111;outline-offset:-2px}
#xb-meta{color:#333}
.mmrow{display:flex;flex-wrap:wrap;gap:.4em 1.4em;align-items:flex-start}.mmrow figure{margin:.3em 0}
canvas.mm{display:block;border:1px solid #bbb}.question{max-width:420px;margin-top:.3em}
.qcap{font-size:12px;color:#555;font-family:system-ui,sans-serif}
.share{margin:.2em 0 .4em;font-family:system-ui,sans-serif}
"""

_JS = r"""
(function(){
"use strict";
function key(td){var v=td.getAttribute("data-v");if(v===null||v==="")return null;
  var f=Number(v);return isNaN(f)?v.toLowerCase():f;}
function sortTable(th){var table=th.closest("table"),idx=Array.prototype.indexOf.call(th.parentNode.children,th);
  var asc=th.getAttribute("aria-sort")!=="ascending";
  table.querySelectorAll("th").forEach(function(h){h.removeAttribute("aria-sort");});
  th.setAttribute("aria-sort",asc?"ascending":"descending");
  var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows);
  rows.sort(function(a,b){var x=key(a.cells[idx]),y=key(b.cells[idx]);
    if(x===null&&y===null)return 0;if(x===null)return 1;if(y===null)return -1;
    var c=(typeof x===typeof y)?(x<y?-1:x>y?1:0):(typeof x==="number"?-1:1);return asc?c:-c;});
  rows.forEach(function(r){body.appendChild(r);});}
document.querySelectorAll("table.sortable th").forEach(function(th){
  th.addEventListener("click",function(){sortTable(th);});});
var node=document.getElementById("xb-data");if(!node)return;
var data=JSON.parse(node.textContent),tasks=Object.keys(data);if(!tasks.length)return;
var selT=document.getElementById("xb-task"),selE=document.getElementById("xb-explainer"),
  selX=document.getElementById("xb-example"),out=document.getElementById("xb-tokens"),
  meta=document.getElementById("xb-meta");
function opt(sel,values,labels){sel.textContent="";values.forEach(function(v,i){var o=document.createElement("option");
  o.value=String(v);o.textContent=labels?labels[i]:String(v);sel.appendChild(o);});}
function rgb(a,vmax){if(a===null)return [221,221,221];var t=Math.max(-1,Math.min(1,a/vmax));
  var r,g,b;if(t>=0){r=255;g=Math.round(255-t*(255-60));b=Math.round(255-t*(255-50));}
  else{t=-t;r=Math.round(255-t*(255-40));g=Math.round(255-t*(255-100));b=255;}
  return [r,g,b];}
function colour(a,vmax){var c=rgb(a,vmax);return "rgb("+c[0]+","+c[1]+","+c[2]+")";}
function name(d,c){return (d.label_names&&d.label_names[c]!==undefined)?d.label_names[c]:String(c);}
function fillTask(){var d=data[selT.value];var ex=Object.keys(d.attributions);
  var prefer=ex.filter(function(e){return e!=="random";});opt(selE,prefer.concat(ex.filter(function(e){return e==="random";})));
  opt(selX,d.examples.map(function(e,i){return i;}),d.examples.map(function(e){return e.id;}));show();}
function mmShow(d,ex,a,vmax,gold){var im=ex.image,h=im.h,w=im.w,px=im.pixels||[],pf=ex.pixel_feature||[],
  parts=ex.parts||[],s=Math.max(2,Math.min(12,Math.floor(288/Math.max(h,w,1)))),ALPHA=0.7;
  function att(f){var v=a[f];return v===undefined?null:v;}
  function hex(j){var m=/^#([0-9a-fA-F]{6})$/.exec(String(px[j]));var v=m?parseInt(m[1],16):0x808080;
    return [(v>>16)&255,(v>>8)&255,v&255];}
  function heat(j){var p=hex(j),l=0.299*p[0]+0.587*p[1]+0.114*p[2],c=rgb(att(pf[j]),vmax);
    return [Math.round(ALPHA*c[0]+(1-ALPHA)*l),Math.round(ALPHA*c[1]+(1-ALPHA)*l),Math.round(ALPHA*c[2]+(1-ALPHA)*l)];}
  var tot=0,txt=0,bad=false;a.forEach(function(v,j){if(v===null||v===undefined){bad=true;return;}
    tot+=Math.abs(v);if(parts[j]==="text")txt+=Math.abs(v);});
  var share=(bad||!tot)?null:txt/tot,ms=ex.model_text_share,sh=document.createElement("div");sh.className="share";
  sh.setAttribute("data-explainer",share===null?"":String(share));
  sh.setAttribute("data-model",typeof ms==="number"?String(ms):"");
  sh.textContent="text share of |attribution| (\u03a3_text |a| / \u03a3 |a|): explainer "+
    (share===null?"n/a":share.toFixed(3))+"; model (two-player Shapley, |\u03c6_text| / (|\u03c6_text| + |\u03c6_image|)) "+
    (typeof ms==="number"?ms.toFixed(3):"n/a (the model ignores both modalities)")+
    (typeof ex.phi_image==="number"&&typeof ex.phi_text==="number"?" (\u03c6_image = "+ex.phi_image.toPrecision(3)+
     ", \u03c6_text = "+ex.phi_text.toPrecision(3)+")":"");
  out.appendChild(sh);
  var row=document.createElement("div");row.className="mmrow";out.appendChild(row);
  function paint(kind,label,fill,outline){var fig=document.createElement("figure"),cap=document.createElement("figcaption");
    cap.textContent=label;var cv=document.createElement("canvas");cv.width=w*s;cv.height=h*s;cv.className="mm "+kind;
    cv.setAttribute("data-scale",String(s));var ctx=cv.getContext("2d"),img=ctx.createImageData(w*s,h*s),D=img.data;
    for(var j=0;j<h*w;j++){var c=fill(j),y0=Math.floor(j/w)*s,x0=(j%w)*s;
      for(var y=y0;y<y0+s;y++)for(var x=x0;x<x0+s;x++){var o=4*(y*w*s+x);D[o]=c[0];D[o+1]=c[1];D[o+2]=c[2];D[o+3]=255;}}
    ctx.putImageData(img,0,0);
    if(outline){var t=Math.max(1,Math.floor(s/4));ctx.fillStyle="#000";
      for(var k=0;k<h*w;k++){var f=pf[k];if(!gold[f])continue;var r=Math.floor(k/w),q=k%w,x1=q*s,y1=r*s;
        if(r===0||!gold[pf[k-w]])ctx.fillRect(x1,y1,s,t);if(r===h-1||!gold[pf[k+w]])ctx.fillRect(x1,y1+s-t,s,t);
        if(q===0||!gold[pf[k-1]])ctx.fillRect(x1,y1,t,s);if(q===w-1||!gold[pf[k+1]])ctx.fillRect(x1+s-t,y1,t,s);}}
    cv.addEventListener("mousemove",function(e){var b=cv.getBoundingClientRect(),
      q=Math.floor((e.clientX-b.left)*w/b.width),r=Math.floor((e.clientY-b.top)*h/b.height);
      if(q<0||q>=w||r<0||r>=h)return;var f=pf[r*w+q],v=att(f);
      cv.title=String(ex.features[f])+": "+(v===null?"n/a":String(v));});
    fig.appendChild(cv);fig.appendChild(cap);row.appendChild(fig);}
  paint("input","image",hex,false);
  paint("heat","attribution over the image (outlined: the gold patches)",heat,true);
  var qd=document.createElement("div");qd.className="question";var qc=document.createElement("div");
  qc.className="qcap";qc.textContent="question (underlined: gold words)";qd.appendChild(qc);
  ex.features.forEach(function(tok,j){if(parts[j]!=="text")return;var sp=document.createElement("span");
    sp.className="tok"+(gold[j]?" gold":"");sp.textContent=tok;var v=att(j);sp.style.background=colour(v,vmax);
    sp.title=(v===null?"n/a":String(v));sp.setAttribute("data-a",v===null?"":String(v));qd.appendChild(sp);
    qd.appendChild(document.createTextNode(" "));});
  row.appendChild(qd);}
function show(){var d=data[selT.value],i=Number(selX.value),ex=d.examples[i],
  a=(d.attributions[selE.value]||[])[i]||[];out.textContent="";
  var vmax=0;a.forEach(function(v){if(v!==null)vmax=Math.max(vmax,Math.abs(v));});if(!vmax)vmax=1;
  meta.textContent="prediction: "+name(d,ex.pred)+" (confidence "+ex.confidence.toFixed(3)+"); gold label: "+
    name(d,ex.label)+"; explained class: "+name(d,ex.target)+" (p = "+ex.p_target.toFixed(3)+"); "+
    ex.features.length+" features; colour: attribution / max |attribution| = "+vmax.toPrecision(3)+
    " (red positive, blue negative); underlined or outlined: gold rationale";
  if(d.modality==="lm")meta.textContent="explained: "+ex.lm_target+" of "+JSON.stringify(ex.answer)+
    (ex.foil!==undefined?" against the foil "+JSON.stringify(ex.foil):"")+" (p = "+ex.p_target.toFixed(3)+"); "+
    (ex.expected!==undefined?"dataset answer: "+JSON.stringify(ex.expected)+" ("+(ex.label===0?"the model's":"not the model's")+"); ":"")+
    ex.features.length+" features; colour: attribution / max |attribution| = "+vmax.toPrecision(3)+
    " (red positive, blue negative); underlined or outlined: gold rationale";
  var gold=ex.rationale||[];
  if(d.modality==="multimodal"&&ex.image){mmShow(d,ex,a,vmax,gold);return;}
  if(d.modality==="image"){var h=d.shape[0],w=d.shape[1];
    var vals=ex.values||[],lo=Math.min.apply(null,vals),hi=Math.max.apply(null,vals);
    [["input",function(j){var t=hi>lo?(vals[j]-lo)/(hi-lo):0.5,c=Math.round(255*t);return "rgb("+c+","+c+","+c+")";}],
     ["attribution",function(j){return colour(a[j]===undefined?null:a[j],vmax);}]].forEach(function(p){
      var wrap=document.createElement("span"),cap=document.createElement("div");cap.textContent=p[0];
      var grid=document.createElement("div");grid.className="grid";grid.style.gridTemplateColumns="repeat("+w+",14px)";
      for(var j=0;j<h*w;j++){var c=document.createElement("div");c.style.background=p[1](j);
        c.title=ex.features[j]+": "+(a[j]===undefined||a[j]===null?"n/a":a[j]);if(gold[j])c.className="gold";
        grid.appendChild(c);}
      wrap.style.display="inline-block";wrap.appendChild(cap);wrap.appendChild(grid);out.appendChild(wrap);});
    return;}
  if(d.modality==="tabular"){var t=document.createElement("table"),hr=document.createElement("tr");
    ["feature","value","attribution","truth","gold"].forEach(function(s){var th=document.createElement("th");th.textContent=s;hr.appendChild(th);});
    t.appendChild(hr);ex.features.forEach(function(f,j){var tr=document.createElement("tr");
      [f,ex.values?ex.values[j]:"",a[j],ex.truth?ex.truth[j].toPrecision(3):"",gold[j]?"✓":""].forEach(function(s,k){
        var td=document.createElement("td");td.textContent=(s===null||s===undefined)?"n/a":String(s);
        if(k===2)td.style.background=colour(a[j]===undefined?null:a[j],vmax);tr.appendChild(td);});
      t.appendChild(tr);});out.appendChild(t);return;}
  ex.features.forEach(function(tok,j){var s=document.createElement("span");s.className="tok"+(gold[j]?" gold":"");
    s.textContent=tok;var v=a[j]===undefined?null:a[j];s.style.background=colour(v,vmax);
    s.title=(v===null?"n/a":String(v));s.setAttribute("data-a",v===null?"":String(v));out.appendChild(s);
    out.appendChild(document.createTextNode(" "));});
  if(d.modality==="lm"){var t=document.createElement("span");t.className="tok target";
    t.textContent="\u2192 "+ex.answer+(ex.foil!==undefined?" (vs "+ex.foil+")":"");out.appendChild(t);}}
opt(selT,tasks);selT.addEventListener("change",fillTask);selE.addEventListener("change",show);
selX.addEventListener("change",show);fillTask();
document.body.setAttribute("data-ready","1");
})();
"""


def build_report(run_dir: Path, n_examples: int = DEFAULT_EXAMPLES, plots: bool = True) -> str:
    """The HTML text of a run's report (see the module docstring)."""
    run_dir = Path(run_dir)
    if not (run_dir / "leaderboard.json").exists():
        raise XBenchError(f"{run_dir}: not a run directory (no leaderboard.json)")
    lb = load_leaderboard(run_dir)
    manifest = RunDir(run_dir).manifest(required=False)
    summary, flags = task_summary(lb)
    tasks = list(dict.fromkeys(lb["task"]))
    figures: dict[str, list[Path]] = {}
    if plots:
        from xbench.report.plots import write_plots

        for p in write_plots(run_dir, lb, summary):
            if p.suffix == ".png":
                figures.setdefault(p.stem, []).append(p)

    def figs(prefix: str) -> str:
        return "".join(_img(ps[0], stem.replace("_", " ")) for stem, ps in figures.items() if stem.startswith(prefix))

    cfg = manifest.get("config", {})
    facts = [("suite", cfg.get("suite")), ("tasks", ", ".join(tasks)), ("examples per task", cfg.get("n")),
             ("seed", cfg.get("seed")), ("config hash", manifest.get("config_hash")),
             ("git commit", manifest.get("git_commit")), ("started", manifest.get("started")),
             ("wall seconds", manifest.get("wall_seconds")),
             ("versions", ", ".join(f"{k} {v}" for k, v in manifest.get("versions", {}).items()))]
    parts = [f"<h1>xbench report: {_e(cfg.get('suite', run_dir.name))}</h1>",
             '<table class="facts"><tbody>' + "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>"
                                                     for k, v in facts if v not in (None, "")) + "</tbody></table>",
             "<p>Cells: mean [95% bootstrap CI] #rank group (explainers whose paired Wilcoxon tests, Holm-corrected, "
             "show no significant difference share a span of ranks). ↑ higher is better, ↓ lower is better. Click a "
             "column header to sort.</p>",
             "<nav><b>Tasks:</b> " + " · ".join(f'<a href="#task-{_e(t)}">{_e(t)}</a>' for t in tasks)
             + ' · <a href="#across">across tasks</a> · <a href="#viewer">example viewer</a></nav>']
    for task in tasks:
        g = lb[lb["task"] == task]
        info = manifest.get("tasks", {}).get(task, {})
        order = explainer_order(g)
        sec = [f'<section id="task-{_e(task)}"><h2>{_e(task)}</h2>']
        if info:
            acc = info.get("model", {}).get("test_accuracy")
            sec.append(f"<p>n = {_e(info.get('n_examples'))} examples; replacement <code>{_e(info.get('replacement'))}"
                       f"</code>; target <code>{_e(info.get('target'))}</code>; granularity <code>"
                       f"{_e(info.get('granularity'))}</code>" + (f"; model held-out accuracy {acc:.3f}" if acc is not None else "")
                       + ".</p>")
        if not summary.empty and task in set(summary["task"]):
            sec.append("<h3>summary</h3>" + _summary_html(summary, task))
        sec += [f'<p class="flag">⚠ {_e(f)}</p>' for f in flags if f" on {task} (" in f]
        for fam in family_order(g["family"]):
            sec.append(_family_table(g, fam, order))
            if fam == "modality":
                sec.append(_modality_share_html(g, info))
        plots_html = figs(f"cost_quality_{task}") + figs(f"curve_{task}_") + figs(f"agreement_{task}") + \
            figs(f"tokens_{task}_")
        if plots_html:
            sec.append("<h3>plots</h3>" + plots_html)
        parts.append("".join(sec) + "</section>")
    acr = across_tasks(summary)
    if acr is not None:
        test = (f"Friedman χ² = {acr['statistic']:.2f}, p = {acr['p']:.3g}, k = {acr['k']}, N = {acr['n']}; "
                f"Nemenyi CD = {acr['cd']:.2f}" if acr["p"] is not None else f"Friedman test: {acr['reason']}")
        rows = [[(_e(e), e), (f"{r:.2f}", r),
                 (_e(", ".join(str(i + 1) for i, gr in enumerate(acr["groups"]) if e in gr) or "–"), None)]
                for e, r in acr["avg_ranks"].items()]
        parts.append('<section id="across"><h2>across tasks</h2><p>' + _e(test) + "</p>"
                     + _table([("explainer", ""), ("average rank", "1 = best"), ("CD group", "")], rows)
                     + figs("cd_") + "</section>")
    ranked = {t: list(summary.loc[summary["task"] == t, "explainer"]) for t in tasks} if not summary.empty else {}
    viewer = _viewer_data(run_dir, tasks, n_examples, ranked)
    parts.append('<section id="viewer"><h2>example viewer</h2>'
                 + ("<p>No examples stored in this run (run with xbench ≥ 0.1 to get <code>examples/</code>).</p>"
                    if not viewer else
                    '<label>task <select id="xb-task"></select></label><label>explainer <select id="xb-explainer">'
                    '</select></label><label>example <select id="xb-example"></select></label>'
                    '<p id="xb-meta"></p><div id="xb-tokens"></div>')
                 + "</section>")
    digest = base64.b64encode(hashlib.sha256(_JS.encode()).digest()).decode()
    csp = (f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{digest}'; "
           "base-uri 'none'; form-action 'none'")
    title = f"xbench report: {cfg.get('suite', run_dir.name)}"
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
            + "\n".join(parts)
            + f'<script type="application/json" id="xb-data">{_json_for_script(viewer)}</script>'
            + f"<script>{_JS}</script></body></html>\n")


def write_report(run_dir: Path, out: Path, n_examples: int = DEFAULT_EXAMPLES, plots: bool = True) -> Path:
    """Write :func:`build_report` to ``out`` atomically; returns ``out``."""
    return atomic_write_text(out, build_report(run_dir, n_examples, plots))
