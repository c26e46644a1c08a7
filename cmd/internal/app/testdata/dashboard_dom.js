// A minimal DOM to run the dashboard's script under node
// (TestDashboardScriptHostileIDs): node dashboard_dom.js WEBDIR ANSWER.json
// loads europe.js and dashboard.js from WEBDIR, answers the page's first
// fetch with ANSWER.json and prints every element it drew, one per line.
const fs = require("fs");
const path = require("path");
class El {
  constructor(tag) { this.tagName = tag; this.children = []; this.attrs = {}; this.dataset = {}; this.className = ""; this._text = ""; this.title = ""; }
  get firstChild() { return this.children[0] || null; }
  removeChild(c) { this.children.splice(this.children.indexOf(c), 1); }
  append(...cs) { for (const c of cs) this.children.push(c); }
  setAttribute(k, v) { if (/^on/i.test(k)) throw new Error("event attribute " + k); this.attrs[k] = String(v); }
  set textContent(t) { this._text = String(t); this.children = []; }
  get textContent() { return this._text + this.children.map((c) => c.textContent).join(""); }
  set innerHTML(h) { throw new Error("innerHTML set: " + h); }
}
const byId = new Proxy({}, { get: (o, id) => (o[id] ||= new El("div")) });
const sel = new Proxy({}, { get: (o, s) => (o[s] ||= new El("tbody")) });
global.document = {
  getElementById: (id) => byId[id],
  querySelector: (s) => sel[s],
  createElement: (t) => new El(t),
  createElementNS: (ns, t) => new El(t),
  body: new El("body"),
};
global.window = global;
// With "hang" as the third argument the fetch never answers: the page's
// own timeout (a 5 s timer, fired here at once) must abort it.
const [webDir, answerFile, mode] = process.argv.slice(2);
global.fetch = (url, opts) => mode === "hang"
  ? new Promise((_, reject) => opts.signal.addEventListener("abort", () => reject(new Error("timed out"))))
  : Promise.resolve({ ok: true, status: 200, json: async () => JSON.parse(fs.readFileSync(answerFile, "utf8")) });
const timers = [];
global.setTimeout = (f, ms) => timers.push({ f, ms }); // an id from 1
global.clearTimeout = (id) => { if (timers[id - 1]) timers[id - 1].f = null; };
eval(fs.readFileSync(path.join(webDir, "europe.js"), "utf8"));
eval(fs.readFileSync(path.join(webDir, "dashboard.js"), "utf8"));
const dump = (name, n, d) => {
  let s = name + " ".repeat(d) + n.tagName + " " + JSON.stringify(n.attrs) + " " + JSON.stringify(n.dataset) +
    (n.title ? " title=" + JSON.stringify(n.title) : "") + (n._text ? " text=" + JSON.stringify(n._text) : "") + "\n";
  for (const c of n.children) s += dump(name, c, d + 1);
  return s;
};
if (mode === "hang") {
  const t = timers.find((t) => t.ms === 5000 && t.f);
  if (t) t.f();
}
setImmediate(() => setImmediate(() => {
  let out = "";
  for (const [k, v] of Object.entries(byId)) out += dump(k + ": ", v, 0);
  for (const [k, v] of Object.entries(sel)) out += dump(k + ": ", v, 0);
  process.stdout.write(out);
}));
