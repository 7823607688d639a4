"""The report page's stylesheet, inlined into every HTML report (no external files, no fonts)."""

CSS = """
:root{--fg:#1d232b;--muted:#5d6773;--line:#d9dee4;--bg:#fff;--card:#f6f8fa;
--s0:#1f6fd1;--s1:#e07b00;--s2:#2f9e5b;--s3:#8d4fc9;--crit:#c62828;--warn:#b26a00;--info:#2d6fb4}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
color:var(--fg);background:var(--bg)}
main{max-width:1240px;margin:0 auto;padding:20px 24px 60px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:0 0 8px;word-break:break-all}
h3{font-size:15px;margin:22px 0 8px;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
a{color:var(--s0)}
.sub{color:var(--muted);margin:0 0 16px}
nav ul,.lineage ul{list-style:none;padding-left:0;margin:0}
nav li{margin:2px 0}
.lineage ul ul{padding-left:22px;border-left:1px solid var(--line);margin-left:6px}
.lineage li{margin:3px 0}
.run{border-top:2px solid var(--line);margin-top:28px;padding-top:18px}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:0}
dl.meta dt{color:var(--muted)}dl.meta dd{margin:0;word-break:break-word}
.badge{display:inline-block;border-radius:3px;padding:0 6px;font-size:12px;font-weight:600;color:#fff;
vertical-align:1px}
.critical{background:var(--crit)}.warning{background:var(--warn)}.info{background:var(--info)}
.finding{background:var(--card);border-left:4px solid var(--info);border-radius:4px;padding:10px 14px;margin:8px 0}
.finding.sev-critical{border-color:var(--crit)}.finding.sev-warning{border-color:var(--warn)}
.finding .title{font-weight:600}
.finding .kind{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px}
.finding .src{color:var(--muted);font-size:12px}
.finding dl{display:grid;grid-template-columns:repeat(auto-fill,minmax(240px,1fr));gap:2px 18px;margin:8px 0;
font-size:13px}
.finding dl div{display:flex;gap:8px}.finding dt{color:var(--muted);white-space:nowrap}
.finding dd{margin:0;word-break:break-word}
.fix{margin:6px 0 0}.fix b{color:var(--s2)}
details{margin:6px 0}summary{cursor:pointer;color:var(--muted)}
pre{background:#eef1f4;padding:8px;border-radius:4px;overflow:auto;font-size:12px;max-height:320px}
.none{color:var(--muted)}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(540px,1fr));gap:14px}
figure{margin:0;border:1px solid var(--line);border-radius:6px;padding:8px 8px 4px}
figcaption{font-weight:600;overflow-wrap:anywhere}figcaption span{font-weight:400;color:var(--muted)}
figure .note{margin:0;color:var(--muted);font-size:12px}
svg.plot{width:100%;height:auto;display:block;font:11px system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif}
svg.plot .grid line{stroke:#e8ebef;stroke-width:1}
svg.plot .grid line.axis,svg.plot .grid line.xt{stroke:#9aa4ae}
svg.plot text{fill:var(--muted)}
svg.plot .ylab{text-anchor:end;dominant-baseline:middle}
svg.plot .xlab{text-anchor:middle}svg.plot .xname{text-anchor:end;font-style:italic}
svg.plot .legend text{fill:var(--fg)}
svg.plot path.line{fill:none;stroke-width:1.8;stroke-linejoin:round}
svg.plot .s0{stroke:var(--s0);fill:var(--s0)}svg.plot .s1{stroke:var(--s1);fill:var(--s1)}
svg.plot .s2{stroke:var(--s2);fill:var(--s2)}svg.plot .s3{stroke:var(--s3);fill:var(--s3)}
svg.plot path.line.s0,svg.plot path.line.s1,svg.plot path.line.s2,svg.plot path.line.s3{fill:none}
svg.plot path.bar{stroke:none;opacity:.85}
svg.plot .parent{stroke:#a8b0b9;fill:#a8b0b9}svg.plot path.line.parent{fill:none;stroke-width:2.4}
svg.plot line.key{stroke-width:3}
svg.plot .trend{stroke:#222;stroke-width:1.6;stroke-dasharray:6 3}
svg.plot .projection{stroke:var(--crit);stroke-width:1.6;stroke-dasharray:3 3}
svg.plot .limit{stroke:var(--crit);stroke-width:1.2;stroke-dasharray:8 4}
svg.plot .hlab{text-anchor:end;fill:var(--crit)}
svg.plot .restore{stroke:#7b3fbf;stroke-width:1.6;stroke-dasharray:4 2}
svg.plot .restore-lab{fill:#7b3fbf;font-weight:600}
svg.plot .finding{stroke:var(--warn);stroke-width:1.2;stroke-dasharray:2 2}
svg.plot .finding-lab{fill:var(--warn)}
svg.plot .clip{fill:var(--s0)}svg.plot .clip-lab{fill:var(--s0)}
table.epochs{border-collapse:collapse;font-size:12px;font-variant-numeric:tabular-nums}
table.epochs th,table.epochs td{padding:2px 10px;text-align:right;border-bottom:1px solid #eef0f2}
.problems li{color:var(--crit)}
footer{margin-top:40px;color:var(--muted);font-size:12px}
@media print{.grid{grid-template-columns:1fr 1fr}figure{break-inside:avoid}}
"""
