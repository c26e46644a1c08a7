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
const [webDir, answerFile] = process.argv.slice(2);
global.fetch = async () => ({ ok: true, status: 200, json: async () => JSON.parse(fs.readFileSync(answerFile, "utf8")) });
global.setTimeout = () => {};
eval(fs.readFileSync(path.join(webDir, "europe.js"), "utf8"));
eval(fs.readFileSync(path.join(webDir, "dashboard.js"), "utf8"));
const dump = (name, n, d) => {
  let s = name + " ".repeat(d) + n.tagName + " " + JSON.stringify(n.attrs) + " " + JSON.stringify(n.dataset) +
    (n.title ? " title=" + JSON.stringify(n.title) : "") + (n._text ? " text=" + JSON.stringify(n._text) : "") + "\n";
  for (const c of n.children) s += dump(name, c, d + 1);
  return s;
};
setImmediate(() => setImmediate(() => {
  let out = "";
  for (const [k, v] of Object.entries(byId)) out += dump(k + ": ", v, 0);
  for (const [k, v] of Object.entries(sel)) out += dump(k + ": ", v, 0);
  process.stdout.write(out);
}));
