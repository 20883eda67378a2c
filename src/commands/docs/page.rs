//! The page: the DAG's layout (layers by depth, computed here, so the SVG is in the HTML before
//! any script runs) and one HTML file holding its CSS, its script and the project's data.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::{Value, json};

const NODE_WIDTH: usize = 180;
const NODE_HEIGHT: usize = 34;
const LAYER_GAP: usize = 230;
const ROW_GAP: usize = 52;

/// Positions by node id: sources in layer 0, a model one layer right of its deepest input, a
/// target right of its model; within a layer in name order.
pub fn layout(nodes: &[Value], edges: &[(String, String)]) -> Value {
    let mut inputs: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in edges {
        inputs.entry(to.as_str()).or_default().push(from.as_str());
    }
    let mut layer: BTreeMap<String, usize> = BTreeMap::new();
    // Nodes come in dependency order (sources, models in DAG order, targets).
    for node in nodes {
        let id = node["id"].as_str().unwrap_or_default();
        let depth =
            inputs.get(id).map_or(0, |ins| ins.iter().map(|i| layer.get(*i).map_or(0, |d| d + 1)).max().unwrap_or(0));
        layer.insert(id.to_string(), depth);
    }
    let mut rows: BTreeMap<usize, usize> = BTreeMap::new();
    let mut out = serde_json::Map::new();
    for node in nodes {
        let id = node["id"].as_str().unwrap_or_default();
        let l = layer[id];
        let row = rows.entry(l).or_insert(0);
        out.insert(id.to_string(), json!({"x": 20 + l * LAYER_GAP, "y": 20 + *row * ROW_GAP}));
        *row += 1;
    }
    Value::Object(out)
}

/// `&`, `<`, `>`, `"` escaped for HTML text and attributes.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The SVG of the DAG.
fn svg(data: &Value) -> String {
    let layout = &data["layout"];
    let empty = vec![];
    let nodes = data["nodes"].as_array().unwrap_or(&empty);
    let (mut width, mut height) = (400, 200);
    for n in nodes {
        let p = &layout[n["id"].as_str().unwrap_or_default()];
        width = width.max(p["x"].as_u64().unwrap_or(0) as usize + NODE_WIDTH + 20);
        height = height.max(p["y"].as_u64().unwrap_or(0) as usize + NODE_HEIGHT + 20);
    }
    let mut s = format!(
        r#"<svg id="dag" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}">"#
    );
    for e in data["edges"].as_array().unwrap_or(&empty) {
        let (from, to) = (e["from"].as_str().unwrap_or_default(), e["to"].as_str().unwrap_or_default());
        let (a, b) = (&layout[from], &layout[to]);
        let (x1, y1) = (
            a["x"].as_u64().unwrap_or(0) as usize + NODE_WIDTH,
            a["y"].as_u64().unwrap_or(0) as usize + NODE_HEIGHT / 2,
        );
        let (x2, y2) = (b["x"].as_u64().unwrap_or(0) as usize, b["y"].as_u64().unwrap_or(0) as usize + NODE_HEIGHT / 2);
        let mid = (x1 + x2) / 2;
        let _ = write!(
            s,
            r#"<path class="edge" data-from="{}" data-to="{}" d="M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"/>"#,
            escape(from),
            escape(to)
        );
    }
    for n in nodes {
        let id = n["id"].as_str().unwrap_or_default();
        let p = &layout[id];
        let (x, y) = (p["x"].as_u64().unwrap_or(0), p["y"].as_u64().unwrap_or(0));
        let kind = n["kind"].as_str().unwrap_or_default();
        let name = n["name"].as_str().unwrap_or_default();
        let shown: String =
            if name.chars().count() > 22 { name.chars().take(21).chain(['…']).collect() } else { name.to_string() };
        let _ = write!(
            s,
            r#"<g class="node {kind}" data-id="{}" transform="translate({x},{y})"><title>{kind} {}</title><rect width="{NODE_WIDTH}" height="{NODE_HEIGHT}" rx="6"/><text x="10" y="22">{}</text></g>"#,
            escape(id),
            escape(name),
            escape(&shown)
        );
    }
    s.push_str("</svg>");
    s
}

/// The whole page.
pub fn render(data: &Value) -> String {
    // `</` cannot end the script element early inside the JSON.
    let json = data.to_string().replace("</", "<\\/");
    let project = escape(data["project"].as_str().unwrap_or_default());
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{project} — dfpipe docs</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{CSS}</style></head>
<body>
<header><h1>{project}</h1><span class="muted">dfpipe docs · generated {generated}</span>
<span class="legend"><i class="source"></i>source <i class="model"></i>model <i class="target"></i>target</span></header>
<main><section id="graph">{svg}</section>
<aside id="details"><p class="muted">Click a node to see its columns, lineage, tests, schema history and runs; click a column to light its lineage.</p>
<div id="runs"></div></aside></main>
<script type="application/json" id="dfpipe-data">{json}</script>
<script>{SCRIPT}</script>
</body></html>
"#,
        generated = escape(data["generated_at"].as_str().unwrap_or_default()),
        svg = svg(data),
    )
}

const CSS: &str = r#"
body{margin:0;font:14px/1.4 system-ui,sans-serif;color:#1d2330;background:#f6f7fb}
header{display:flex;gap:16px;align-items:baseline;padding:10px 18px;background:#1d2330;color:#fff}
header h1{font-size:18px;margin:0}.muted{color:#8a93a6}.legend i{display:inline-block;width:12px;height:12px;border-radius:3px;margin:0 4px 0 10px;vertical-align:-1px}
.legend .source{background:#d6ecff}.legend .model{background:#e4f7e0}.legend .target{background:#ffe9cc}
main{display:flex;height:calc(100vh - 48px)}#graph{flex:1 1 auto;overflow:auto;background:#fff;border-right:1px solid #dde1ea}
#details{flex:0 0 460px;overflow:auto;padding:12px 18px}
.node rect{stroke:#8a93a6;stroke-width:1}.node.source rect{fill:#d6ecff}.node.model rect{fill:#e4f7e0}.node.target rect{fill:#ffe9cc}
.node text{font-size:13px;fill:#1d2330}.node{cursor:pointer}.node.selected rect{stroke:#1d2330;stroke-width:2.5}
.node.lit rect{stroke:#e0483e;stroke-width:3}.edge{fill:none;stroke:#b8bfcc;stroke-width:1.5}.edge.lit{stroke:#e0483e;stroke-width:3}
table{border-collapse:collapse;width:100%;margin:6px 0 14px}td,th{border-bottom:1px solid #e3e6ee;padding:3px 6px;text-align:left;font-size:13px;vertical-align:top}
th{color:#5b6478;font-weight:600}li.col{cursor:pointer;padding:2px 4px;border-radius:4px;list-style:none}li.col:hover{background:#eef1f7}
li.col.lit{background:#fde2df;font-weight:600}code,pre{font:12px/1.4 ui-monospace,monospace}pre{background:#f0f2f7;padding:8px;overflow:auto}
h2{font-size:16px;margin:14px 0 4px}h3{font-size:14px;margin:12px 0 4px}.ok{color:#1c7c3a}.bad{color:#c0362c}
"#;

const SCRIPT: &str = r#"
const data = JSON.parse(document.getElementById('dfpipe-data').textContent);
const byId = Object.fromEntries(data.nodes.map(n => [n.id, n]));
const esc = s => String(s ?? '').replace(/[&<>"]/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));
const num = x => x == null ? '-' : Number(x).toLocaleString('en-US', {maximumFractionDigits: 2});
const mb = b => b == null ? '-' : (b / 1048576).toFixed(1) + ' MiB';
function table(rows, cols) {
  if (!rows || !rows.length) return '<p class="muted">none recorded</p>';
  return '<table><tr>' + cols.map(c => '<th>' + esc(c[0]) + '</th>').join('') + '</tr>' +
    rows.map(r => '<tr>' + cols.map(c => '<td>' + (c[2] ? c[2](r[c[1]], r) : esc(r[c[1]])) + '</td>').join('') + '</tr>').join('') + '</table>';
}
// Column lineage: "node|column" keys upstream (through lineage) and downstream (what reads it).
function columnKey(node, column) { return node + '|' + column; }
function lineageOf(nodeId, column) {
  const lit = new Set([columnKey(nodeId, column)]);
  const up = [[nodeId, column]];
  while (up.length) {
    const [n, c] = up.pop(); const node = byId[n];
    const model = node && node.kind === 'target' ? 'model:' + node.model : n;
    if (model !== n) { const k = columnKey(model, c); if (!lit.has(k)) { lit.add(k); up.push([model, c]); } }
    const from = (byId[model] && byId[model].lineage && byId[model].lineage[c]) || [];
    for (const f of from) { const k = columnKey(f.node, f.column); if (!lit.has(k)) { lit.add(k); up.push([f.node, f.column]); } }
  }
  const down = [[nodeId, column]];
  while (down.length) {
    const [n, c] = down.pop();
    for (const m of data.nodes) {
      if (m.kind === 'model' && m.lineage) for (const [col, from] of Object.entries(m.lineage))
        if (from.some(f => f.node === n && f.column === c)) { const k = columnKey(m.id, col); if (!lit.has(k)) { lit.add(k); down.push([m.id, col]); } }
      if (m.kind === 'target' && 'model:' + m.model === n) { const k = columnKey(m.id, c); if (!lit.has(k)) { lit.add(k); down.push([m.id, c]); } }
    }
  }
  return lit;
}
function light(lit) {
  const nodes = new Set([...lit].map(k => k.split('|')[0]));
  document.querySelectorAll('.node').forEach(g => g.classList.toggle('lit', nodes.has(g.dataset.id)));
  document.querySelectorAll('.edge').forEach(p => p.classList.toggle('lit', nodes.has(p.dataset.from) && nodes.has(p.dataset.to)));
  document.querySelectorAll('li.col').forEach(li => li.classList.toggle('lit', lit.has(li.dataset.key)));
}
function selectColumn(nodeId, column) {
  showNode(nodeId);
  light(lineageOf(nodeId, column));
  history.replaceState(null, '', '#column=' + encodeURIComponent(nodeId + '.' + column));
}
function showNode(id) {
  const n = byId[id]; if (!n) return;
  document.querySelectorAll('.node').forEach(g => g.classList.toggle('selected', g.dataset.id === id));
  let h = '<h2>' + esc(n.kind) + ' ' + esc(n.name) + '</h2>';
  if (n.description) h += '<p>' + esc(n.description) + '</p>';
  if (n.path) h += '<p><code>' + esc(n.path) + '</code> (' + esc(n.format) + ')</p>';
  if (n.file) h += '<p><code>' + esc(n.file) + '</code></p>';
  if (n.kind === 'target') h += '<p>model <code>' + esc(n.model) + '</code>, mode ' + esc(n.mode) + '</p>';
  h += '<h3>Columns</h3><ul class="cols">' + (n.columns || []).map(c => {
    const from = (n.lineage && n.lineage[c.name]) || [];
    const how = from.map(f => esc(f.how) + ' from ' + esc(f.node.split(':')[1]) + '.' + esc(f.column)).join('; ');
    return '<li class="col" data-node="' + esc(n.id) + '" data-column="' + esc(c.name) + '" data-key="' + esc(columnKey(n.id, c.name)) + '"><b>' +
      esc(c.name) + '</b> <span class="muted">' + esc(c.type) + '</span>' + (c.description ? ' — ' + esc(c.description) : '') +
      (how ? ' <span class="muted">← ' + how + '</span>' : '') + '</li>';
  }).join('') + '</ul>';
  if (n.tests) {
    h += '<h3>Tests</h3>' + (n.tests.length ? '<ul>' + n.tests.map(t => '<li><code>' + esc(t) + '</code></li>').join('') + '</ul>' : '<p class="muted">none declared</p>');
    h += table(n.test_results, [['test', 'test'], ['outcome', 'outcome', v => '<span class="' + (v === 'pass' ? 'ok' : 'bad') + '">' + esc(v) + '</span>'], ['failures', 'failures', num], ['message', 'message']]);
  }
  if (n.runs) h += '<h3>Last runs</h3>' + table(n.runs, [['run', 'run_id'], ['started', 'started_at'], ['status', 'status'], ['rows', 'rows', num],
    ['seconds', 'seconds', num], ['rows/s', 'rows', (v, r) => r.seconds > 0 ? num(v / r.seconds) : '-'], ['peak RSS', 'peak_rss_bytes', mb], ['strategy', 'strategy']]);
  if (n.files) h += '<h3>Files read (last run)</h3>' + table(n.files, [['path', 'path'], ['bytes', 'size', num], ['modified', 'modified']]);
  if (n.history) h += '<h3>Schema history</h3>' + table(n.history, [['run', 'run_id'], ['recorded', 'recorded_at'], ['fingerprint', 'fingerprint'], ['baseline', 'accepted']]);
  if (n.drift && n.drift.length) h += '<h3>Drift</h3>' + table(n.drift, [['run', 'run_id'], ['change', 'change'], ['column', 'column'], ['before', 'before'], ['after', 'after'], ['outcome', 'outcome']]);
  if (n.sql) h += '<h3>SQL</h3><pre>' + esc(n.sql) + '</pre>';
  document.getElementById('details').innerHTML = h + runsTable();
  document.querySelectorAll('li.col').forEach(li => li.addEventListener('click', () => selectColumn(li.dataset.node, li.dataset.column)));
}
function runsTable() {
  return '<div id="runs"><h3>Project runs</h3>' + table(data.runs, [['run', 'run_id'], ['started', 'started_at'], ['status', 'status'], ['targets', 'targets'],
    ['rows', 'rows', num], ['seconds', 'elapsed_seconds', num], ['peak RSS', 'peak_rss_bytes', mb], ['strategy', 'strategy']]) + '</div>';
}
document.getElementById('runs').outerHTML = runsTable();
document.querySelectorAll('.node').forEach(g => g.addEventListener('click', () => { light(new Set()); showNode(g.dataset.id); }));
const wanted = decodeURIComponent(location.hash.replace(/^#column=/, ''));
// `#column=model:x.col` (a link to a column): open its node and click the column, as a person would.
if (location.hash.startsWith('#column=')) {
  const cut = wanted.lastIndexOf('.');
  const node = wanted.slice(0, cut), column = wanted.slice(cut + 1);
  const g = [...document.querySelectorAll('.node')].find(g => g.dataset.id === node);
  if (g) g.dispatchEvent(new MouseEvent('click', {bubbles: true}));
  const li = [...document.querySelectorAll('li.col')].find(li => li.dataset.key === columnKey(node, column));
  if (li) li.dispatchEvent(new MouseEvent('click', {bubbles: true}));
}
"#;
