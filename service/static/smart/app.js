// The full assessment page: draws the lab trends with uPlot (vendored, served by the
// service) from the JSON block the server wrote, and wires the copy and print buttons.
// No inline script anywhere: the page's Content-Security-Policy allows only this origin.
(function () {
  'use strict';

  var COLOURS = { line: '#9aa4b1', window: '#1f6feb', stale: '#8a8f98', used: '#1d2430', band: 'rgba(15, 118, 110, 0.12)' };

  function pointsOnly(colour, fill, size) {
    return {
      stroke: colour,
      width: 1.5,
      paths: function () { return null; },
      points: { show: true, size: size, stroke: colour, fill: fill, width: 1.5 }
    };
  }

  function drawTrend(trend, data, target) {
    var xs = [], all = [], inWindow = [], stale = [], used = [];
    trend.points.forEach(function (p) {
      xs.push(p.t);
      all.push(p.v);
      inWindow.push(p.stale ? null : p.v);
      stale.push(p.stale ? p.v : null);
      used.push(p.used ? p.v : null);
    });
    var day = 86400;
    var options = {
      width: Math.max(260, target.clientWidth || 320),
      height: 170,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: {
        // The window is always in view, with every point before it.
        x: { time: true, auto: false, range: [Math.min(xs[0], data.windowStart) - 3 * day, Math.max(xs[xs.length - 1], data.windowEnd) + 3 * day] }
      },
      series: [
        {},
        { label: trend.label, stroke: COLOURS.line, width: 1, points: { show: false } },
        Object.assign({ label: 'in window' }, pointsOnly(COLOURS.window, COLOURS.window, 7)),
        Object.assign({ label: 'stale' }, pointsOnly(COLOURS.stale, '#ffffff', 7)),
        Object.assign({ label: 'used' }, pointsOnly(COLOURS.used, 'rgba(0,0,0,0)', 13))
      ],
      axes: [{ stroke: '#5b6675' }, { stroke: '#5b6675', size: 50 }],
      hooks: {
        drawClear: [function (u) {
          var ctx = u.ctx;
          var left = u.valToPos(data.windowStart, 'x', true);
          var right = u.valToPos(data.windowEnd, 'x', true);
          ctx.save();
          ctx.fillStyle = COLOURS.band;
          ctx.fillRect(left, u.bbox.top, right - left, u.bbox.height);
          ctx.restore();
        }]
      }
    };
    new uPlot(options, [xs, all, inWindow, stale, used], target);
    target.setAttribute('data-drawn', 'true');
  }

  function drawTrends() {
    var block = document.getElementById('trend-data');
    if (!block || typeof uPlot === 'undefined') return;
    var data = JSON.parse(block.textContent);
    data.trends.forEach(function (trend) {
      var target = document.getElementById('plot-' + trend.lab);
      if (target && trend.points.length) drawTrend(trend, data, target);
    });
    document.body.setAttribute('data-trends', 'drawn');
  }

  function wireButtons() {
    var summary = document.getElementById('board-summary');
    var result = document.getElementById('copy-result');
    var copy = document.getElementById('copy-summary');
    if (copy && summary) {
      copy.addEventListener('click', function () {
        var done = function () { result.textContent = 'Copied.'; };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(summary.value).then(done, function () {
            summary.select();
            result.textContent = 'Selected: press Ctrl+C to copy.';
          });
        } else {
          summary.select();
          result.textContent = 'Selected: press Ctrl+C to copy.';
        }
      });
    }
    var print = document.getElementById('print-page');
    if (print) print.addEventListener('click', function () { window.print(); });
  }

  document.addEventListener('DOMContentLoaded', function () {
    wireButtons();
    drawTrends();
  });
})();
