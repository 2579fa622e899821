/* kaohe results pages: client-side table sorting, ECharts heat map and trend chart.
   ECharts is served from /static/vendor (never a CDN). */
(function () {
  "use strict";

  function readJson(id) {
    var el = document.getElementById(id);
    if (!el) return null;
    try { return JSON.parse(el.textContent); } catch (e) { return null; }
  }

  // ---- sortable tables: <th data-sort="num|text">, cells carry data-value
  function sortTable(table, col, kind, th) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var asc = th.getAttribute("aria-sort") !== "ascending";
    rows.sort(function (a, b) {
      var x = a.cells[col].getAttribute("data-value") || a.cells[col].textContent;
      var y = b.cells[col].getAttribute("data-value") || b.cells[col].textContent;
      var r = kind === "num" ? (parseFloat(x) || 0) - (parseFloat(y) || 0) : x.localeCompare(y, "zh-CN");
      return asc ? r : -r;
    });
    Array.prototype.forEach.call(th.parentNode.cells, function (c) { c.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    rows.forEach(function (r) { body.appendChild(r); });
  }

  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      var kind = th.getAttribute("data-sort");
      if (!kind) return;
      th.style.cursor = "pointer";
      th.addEventListener("click", function () { sortTable(table, i, kind, th); });
    });
  });

  if (typeof echarts === "undefined") return;

  // ---- heat map: item score / item points per unit
  var heat = readJson("heat-data");
  var heatEl = document.getElementById("heatmap");
  if (heat && heatEl) {
    var chart = echarts.init(heatEl);
    chart.setOption({
      tooltip: {
        formatter: function (p) {
          return heat.units[p.value[1]] + "<br>" + heat.items[p.value[0]] + "：" + (p.value[2] * 100).toFixed(1) + "%";
        }
      },
      grid: { left: 110, right: 20, top: 10, bottom: 90 },
      xAxis: { type: "category", data: heat.items.map(function (s) { return s.split(" ")[0]; }), axisLabel: { rotate: 60 } },
      yAxis: { type: "category", data: heat.units, inverse: true },
      visualMap: { min: 0, max: 1, calculable: true, orient: "horizontal", left: "center", bottom: 0,
                   inRange: { color: ["#cf222e", "#fff8c5", "#1a7f37"] } },
      series: [{ type: "heatmap", data: heat.data, progressive: 2000 }]
    });
    window.addEventListener("resize", function () { chart.resize(); });
  }

  // ---- trend: total and rank across the year's periods
  var trend = readJson("trend-data");
  var trendEl = document.getElementById("trend");
  if (trend && trendEl) {
    var t = echarts.init(trendEl);
    var zh = document.documentElement.lang === "zh-CN";
    t.setOption({
      tooltip: { trigger: "axis" },
      legend: { data: [zh ? "总分" : "Total", zh ? "名次" : "Rank"] },
      xAxis: { type: "category", data: zh ? trend.labels : trend.periods },
      yAxis: [
        { type: "value", name: zh ? "总分" : "Total" },
        { type: "value", name: zh ? "名次" : "Rank", inverse: true, minInterval: 1 }
      ],
      series: [
        { name: zh ? "总分" : "Total", type: "line", data: trend.total, connectNulls: false },
        { name: zh ? "名次" : "Rank", type: "line", yAxisIndex: 1, data: trend.rank, connectNulls: false }
      ]
    });
    window.addEventListener("resize", function () { t.resize(); });
  }
})();
