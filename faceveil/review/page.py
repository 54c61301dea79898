"""The review page: one self-contained HTML document (no external URLs). The queue of withheld and
failed media; for one media its frame with the gate's boxes (red), confirmed manual tracks (green)
and a proposed track (yellow), a stepper and a timeline; draw a box on the frame to track a missed
face, confirm it with a reason; release or keep a withheld media with a reason; an original frame
on request, with a reason; a link to the latest run's report."""

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>faceveil review</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'self'; img-src 'self' blob:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0;display:flex;color:#222;height:100vh}
#queue{width:300px;border-right:1px solid #ccc;overflow:auto;padding:8px}
#queue div{padding:6px;border-radius:4px;cursor:pointer;margin-bottom:4px;word-break:break-all}
#queue div.sel{background:#e3eefc}.leaked{color:#c62828}.failed{color:#ef6c00}.released{color:#2e7d32}
#main{flex:1;padding:10px;overflow:auto}#stage{position:relative;display:inline-block;border:1px solid #999}
#frame{display:block;width:720px;max-width:100%;cursor:crosshair;user-select:none}
#draw{position:absolute;border:2px dashed #1565c0;pointer-events:none;display:none}
#timeline{position:relative;height:18px;background:#eee;margin:6px 0;max-width:900px}
#timeline span{position:absolute;top:0;height:18px}.g{background:#e53935}.m{background:#43a047;opacity:.6}
.p{background:#fbc02d;opacity:.6}input[type=text]{width:320px}button{margin:2px}
#msg{margin:6px 0;font-weight:bold}#orig{max-width:900px;display:none;border:3px solid #c62828}
</style></head><body>
<div id="queue"><h3>To review</h3><div id="list"></div><p><a id="report" href="#">the latest run's report</a></p></div>
<div id="main"><h2 id="title">select a media</h2><p id="why"></p>
<div id="stage"><img id="frame" alt="anonymized frame" draggable="false"><div id="draw"></div></div>
<div id="timeline"></div>
<div><button id="prev">&#9664; prev</button> frame <input id="idx" type="number" min="0" value="0" style="width:70px">
 / <span id="n">0</span> <button id="next">next &#9654;</button> <button id="flagged">next flagged</button></div>
<div>box: <span id="box">none: drag on the frame</span> <button id="track">track this face</button></div>
<div>reason: <input id="reason" type="text" placeholder="why (goes into the access log)">
 <button id="confirm" disabled>confirm track</button> <button id="release">false alarm, release</button>
 <button id="keep">keep withheld</button> <button id="original">show original (logged)</button></div>
<div id="msg"></div><img id="orig" alt="original frame">
</div>
<script>
const token = new URLSearchParams(location.search).get('token') || '';
const H = {'X-Review-Token': token, 'Content-Type': 'application/json'};
let media = null, info = null, frame = 0, box = null, proposal = null, start = null;
const $ = id => document.getElementById(id);
function say(t, bad) { $('msg').textContent = t; $('msg').style.color = bad ? '#c62828' : '#2e7d32'; }
async function api(path, body) {
  const r = await fetch(path, body === undefined ? {headers: H} : {method: 'POST', headers: H, body: JSON.stringify(body)});
  const ct = r.headers.get('content-type') || '';
  const out = ct.includes('json') ? await r.json() : await r.blob();
  if (!r.ok) throw new Error(out.error || r.status);
  return out;
}
async function loadQueue() {
  const q = await api('/api/queue');
  $('list').innerHTML = '';
  for (const m of q.media) {
    const d = document.createElement('div');
    d.className = m.media_id === media ? 'sel' : '';
    d.innerHTML = '<span class="' + m.status + '">' + m.status + '</span> ';
    d.appendChild(document.createTextNode(m.rel_path));
    d.dataset.mid = m.media_id;
    d.onclick = () => act(() => { say(''); return openMedia(m.media_id); });  // a failed media has no frame: its reason is said
    $('list').appendChild(d);
  }
  if (!q.keyed) say('started without the key: looking only (no originals, no actions)', true);
}
async function openMedia(mid) {
  media = mid; info = await api('/api/media/' + mid); proposal = null; $('confirm').disabled = true;
  $('title').textContent = info.row.rel_path + ' (' + info.row.status + ')';
  $('why').textContent = info.row.reason || ''; $('frame').removeAttribute('src');
  $('n').textContent = Math.max(0, (info.row.frames_in || 1) - 1);
  const flagged = Object.keys(info.gate).map(Number).sort((a, b) => a - b);
  await show(flagged.length ? flagged[0] : 0); timeline(); loadQueue();
}
function span(cls, a, b) {
  const n = Math.max(1, info.row.frames_in || 1), s = document.createElement('span');
  s.className = cls; s.style.left = (100 * a / n) + '%'; s.style.width = Math.max(0.5, 100 * (b - a + 1) / n) + '%';
  $('timeline').appendChild(s);
}
function timeline() {
  $('timeline').innerHTML = '';
  for (const t of Object.values(info.manual)) { const f = Object.keys(t).map(Number); span('m', Math.min(...f), Math.max(...f)); }
  if (proposal) { const f = Object.keys(proposal.boxes).map(Number); span('p', Math.min(...f), Math.max(...f)); }
  for (const f of Object.keys(info.gate).map(Number)) span('g', f, f);
}
async function show(i) {
  frame = Math.max(0, Math.min(i, (info.row.frames_in || 1) - 1)); $('idx').value = frame; box = null;
  $('draw').style.display = 'none'; $('box').textContent = 'none: drag on the frame';
  const blob = await api('/frame/' + media + '/' + frame);
  await new Promise(ok => { $('frame').onload = ok; $('frame').src = URL.createObjectURL(blob); });
  $('frame').dataset.frame = frame;
}
function toImage(e) {
  const r = $('frame').getBoundingClientRect(), k = $('frame').naturalWidth / r.width;
  return [(e.clientX - r.left) * k, (e.clientY - r.top) * k, e.clientX - r.left, e.clientY - r.top];
}
$('frame').onmousedown = e => { e.preventDefault(); start = toImage(e); };
window.onmousemove = e => {
  if (!start) return; const p = toImage(e), d = $('draw').style;
  d.display = 'block'; d.left = Math.min(start[2], p[2]) + 'px'; d.top = Math.min(start[3], p[3]) + 'px';
  d.width = Math.abs(p[2] - start[2]) + 'px'; d.height = Math.abs(p[3] - start[3]) + 'px';
};
window.onmouseup = e => {
  if (!start) return; const p = toImage(e);
  box = [Math.min(start[0], p[0]), Math.min(start[1], p[1]), Math.max(start[0], p[0]), Math.max(start[1], p[1])].map(Math.round);
  start = null; $('box').textContent = box.join(', ') + ' on frame ' + frame;
};
$('prev').onclick = () => show(frame - 1); $('next').onclick = () => show(frame + 1);
$('idx').onchange = () => show(parseInt($('idx').value || '0'));
$('flagged').onclick = () => { const f = Object.keys(info.gate).map(Number).sort((a, b) => a - b).find(x => x > frame);
  show(f === undefined ? frame : f); };
async function act(fn) { try { await fn(); } catch (err) { say(err.message, true); } }
$('track').onclick = () => act(async () => {
  if (!box) throw new Error('draw a box around the face first');
  say('tracking...'); const keep = box;
  const r = await api('/api/track', {media: media, frame: frame, box: keep});
  proposal = r; $('confirm').disabled = false; timeline(); await show(frame);
  say('tracked over frames ' + r.frames[0] + '-' + r.frames[1] + ': step through it, then confirm with a reason');
});
$('confirm').onclick = () => act(async () => {
  const r = await api('/api/confirm', {proposal: proposal.proposal, reason: $('reason').value});
  say('manual track ' + r.track_id + ' stored (' + r.frames + ' frames); ' + r.next);
  proposal = null; $('confirm').disabled = true; await openMedia(media);
});
$('release').onclick = () => act(async () => {
  const r = await api('/api/release', {media: media, reason: $('reason').value});
  say('released: ' + r.reason); await openMedia(media);
});
$('keep').onclick = () => act(async () => {
  await api('/api/keep', {media: media, reason: $('reason').value}); say('kept withheld, on the record');
});
$('original').onclick = () => act(async () => {
  const blob = await api('/original/' + media + '/' + frame, {reason: $('reason').value});
  $('orig').src = URL.createObjectURL(blob); $('orig').style.display = 'block'; say('original frame ' + frame + ' (logged)');
});
$('report').href = '/report?token=' + encodeURIComponent(token);
loadQueue();
</script></body></html>
"""
