/*
 * A small GitHub-flavoured Markdown renderer for card details, safe by construction.
 *
 * CDS Hooks card `detail` is Markdown written by a CDS service. An EHR must never let
 * that text inject markup into its page. This renderer never parses HTML at all: it
 * builds DOM nodes with createElement and createTextNode, so "<script>" in the input is
 * shown as the text "<script>". Links are kept only for http, https and mailto URLs.
 *
 * Supported: paragraphs, hard line breaks, ATX headings, bullet and numbered lists
 * (nested by indentation, task-list boxes), block quotes, fenced code, thematic breaks,
 * GFM tables with alignment; inline code, **strong**, *emphasis*, ~~strikethrough~~,
 * [links](url), <autolinks>, bare https:// URLs, backslash escapes and entity references
 * (&gt;, &#62;: decoded to text, never to markup). Images become
 * links (an EHR should not load remote images from card text).
 *
 * API: LiverCdsMarkdown.render(markdown, options?) -> DocumentFragment
 *      options.headingOffset (default 3): "# x" becomes <h4> inside a card.
 */
(function (global) {
  "use strict";

  var MAX_DEPTH = 8;
  var SAFE_PROTOCOLS = { "http:": true, "https:": true, "mailto:": true };
  var PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
  /* Entity references decode to text (as in CommonMark); the result is still a text node. */
  var ENTITIES = {
    amp: "&", lt: "<", gt: ">", quot: "\"", apos: "'", nbsp: "\u00a0", ndash: "\u2013",
    mdash: "\u2014", hellip: "\u2026", le: "\u2264", ge: "\u2265", ne: "\u2260",
    times: "\u00d7", plusmn: "\u00b1", minus: "\u2212", deg: "\u00b0", micro: "\u00b5",
    middot: "\u00b7", bull: "\u2022", rarr: "\u2192", larr: "\u2190", asymp: "\u2248",
    lsquo: "\u2018", rsquo: "\u2019", ldquo: "\u201c", rdquo: "\u201d", copy: "\u00a9",
    reg: "\u00ae", trade: "\u2122", frac12: "\u00bd", sup2: "\u00b2", sup3: "\u00b3"
  };

  function decodeEntity(body) {
    if (body.charAt(0) === "#") {
      var hex = body.charAt(1) === "x" || body.charAt(1) === "X";
      var code = parseInt(body.slice(hex ? 2 : 1), hex ? 16 : 10);
      if (!(code > 0 && code <= 0x10ffff) || (code >= 0xd800 && code <= 0xdfff)) return "\ufffd";
      return String.fromCodePoint(code);
    }
    return Object.prototype.hasOwnProperty.call(ENTITIES, body) ? ENTITIES[body] : null;
  }

  function el(tag, cls) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    return node;
  }

  /* A URL we may put in href, or null. Resolved against the page, scheme allow-listed. */
  function safeUrl(raw) {
    var cleaned = String(raw).replace(/[\u0000-\u0020\u007f]/g, "");
    if (!cleaned) return null;
    var url;
    try {
      url = new URL(cleaned, document.baseURI);
    } catch (e) {
      return null;
    }
    return SAFE_PROTOCOLS[url.protocol] ? url.href : null;
  }

  function link(href, title) {
    var safe = safeUrl(href);
    if (!safe) return el("span", "md-unsafe-link");
    var a = el("a");
    a.setAttribute("href", safe);
    if (!/^mailto:/i.test(safe)) {
      a.setAttribute("target", "_blank");
      a.setAttribute("rel", "noopener noreferrer");
    }
    if (title) a.setAttribute("title", title);
    return a;
  }

  /* ---------------------------------------------------------------- inline */

  function isSpace(ch) {
    return ch === undefined || ch === "" || /\s/.test(ch);
  }
  function isAlnum(ch) {
    return ch !== undefined && /[A-Za-z0-9]/.test(ch);
  }

  /* Index of the closing delimiter for an emphasis run starting at `start`, or -1. */
  function findClosing(text, start, delim) {
    var from = start + delim.length;
    if (isSpace(text.charAt(from))) return -1;
    var i = from;
    while (i < text.length) {
      var ch = text.charAt(i);
      if (ch === "\\") {
        i += 2;
        continue;
      }
      if (ch === "`") {
        var run = text.slice(i).match(/^`+/)[0];
        var end = text.indexOf(run, i + run.length);
        if (end !== -1) {
          i = end + run.length;
          continue;
        }
      }
      if (text.substr(i, delim.length) === delim && i > from && !isSpace(text.charAt(i - 1))) {
        var after = text.charAt(i + delim.length);
        if (delim.charAt(0) === "_" && isAlnum(after)) {
          i += 1;
          continue;
        }
        /* "**a**" must not close "*" at the first star of "**". */
        if (delim.length === 1 && after === delim && text.charAt(i - 1) !== delim) {
          i += 2;
          continue;
        }
        return i;
      }
      i += 1;
    }
    return -1;
  }

  /* [text](url "title") starting at `start` (the "["): {end, label, href, title} or null. */
  function parseLink(text, start) {
    var depth = 0;
    var i = start;
    for (; i < text.length; i++) {
      var ch = text.charAt(i);
      if (ch === "\\") {
        i++;
        continue;
      }
      if (ch === "[") depth++;
      else if (ch === "]") {
        depth--;
        if (depth === 0) break;
      }
    }
    if (depth !== 0 || text.charAt(i + 1) !== "(") return null;
    var label = text.slice(start + 1, i);
    var rest = text.slice(i + 2);
    var m = rest.match(/^\s*(<[^<>\n]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)(?:\s+("[^"]*"|'[^']*'))?\s*\)/);
    if (!m) return null;
    var href = m[1];
    if (href.charAt(0) === "<") href = href.slice(1, -1);
    var title = m[2] ? m[2].slice(1, -1) : "";
    return { end: i + 2 + m[0].length, label: label, href: href, title: title };
  }

  function appendText(parent, text) {
    if (!text) return;
    var last = parent.lastChild;
    if (last && last.nodeType === 3) last.appendData(text);
    else parent.appendChild(document.createTextNode(text));
  }

  function inline(text, parent, depth) {
    if (depth > MAX_DEPTH) {
      appendText(parent, text);
      return;
    }
    var i = 0;
    var buffer = "";
    function flush() {
      appendText(parent, buffer);
      buffer = "";
    }
    while (i < text.length) {
      var ch = text.charAt(i);
      var rest;
      var m;

      if (ch === "\\" && i + 1 < text.length && PUNCTUATION.indexOf(text.charAt(i + 1)) !== -1) {
        buffer += text.charAt(i + 1);
        i += 2;
        continue;
      }
      if (ch === "&") {
        m = text.slice(i, i + 40).match(/^&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});/);
        var decoded = m ? decodeEntity(m[1]) : null;
        if (decoded !== null) {
          buffer += decoded;
          i += m[0].length;
          continue;
        }
      }
      if (ch === "`") {
        var run = text.slice(i).match(/^`+/)[0];
        var close = text.indexOf(run, i + run.length);
        if (close !== -1) {
          flush();
          var code = el("code");
          var content = text.slice(i + run.length, close);
          if (/^ .* $/.test(content)) content = content.slice(1, -1);
          code.textContent = content;
          parent.appendChild(code);
          i = close + run.length;
          continue;
        }
        buffer += run;
        i += run.length;
        continue;
      }
      if (ch === "[" || (ch === "!" && text.charAt(i + 1) === "[")) {
        var image = ch === "!";
        var parsed = parseLink(text, image ? i + 1 : i);
        if (parsed) {
          flush();
          var a = link(parsed.href, parsed.title);
          if (image) {
            appendText(a, parsed.label ? "[image: " + parsed.label + "]" : "[image]");
          } else {
            inline(parsed.label, a, depth + 1);
          }
          parent.appendChild(a);
          i = parsed.end;
          continue;
        }
      }
      if (ch === "<") {
        rest = text.slice(i);
        m = rest.match(/^<((?:https?:\/\/|mailto:)[^\s<>]+)>/i);
        if (m) {
          flush();
          var auto = link(m[1], "");
          auto.textContent = m[1];
          parent.appendChild(auto);
          i += m[0].length;
          continue;
        }
      }
      if ((ch === "h" || ch === "H") && !isAlnum(text.charAt(i - 1))) {
        rest = text.slice(i);
        m = rest.match(/^https?:\/\/[^\s<>]*[^\s<>.,:;"')\]!?*_~]/i);
        if (m) {
          flush();
          var bare = link(m[0], "");
          bare.textContent = m[0];
          parent.appendChild(bare);
          i += m[0].length;
          continue;
        }
      }
      if (ch === "~" && text.charAt(i + 1) === "~") {
        var endDel = findClosing(text, i, "~~");
        if (endDel !== -1) {
          flush();
          var del = el("del");
          inline(text.slice(i + 2, endDel), del, depth + 1);
          parent.appendChild(del);
          i = endDel + 2;
          continue;
        }
      }
      if (ch === "*" || ch === "_") {
        var leftOk = ch === "*" || !isAlnum(text.charAt(i - 1));
        if (leftOk) {
          var strongDelim = ch + ch;
          if (text.substr(i, 2) === strongDelim) {
            var endStrong = findClosing(text, i, strongDelim);
            if (endStrong !== -1) {
              flush();
              var strong = el("strong");
              inline(text.slice(i + 2, endStrong), strong, depth + 1);
              parent.appendChild(strong);
              i = endStrong + 2;
              continue;
            }
          }
          var endEm = findClosing(text, i, ch);
          if (endEm !== -1) {
            flush();
            var em = el("em");
            inline(text.slice(i + 1, endEm), em, depth + 1);
            parent.appendChild(em);
            i = endEm + 1;
            continue;
          }
        }
      }
      buffer += ch;
      i += 1;
    }
    flush();
  }

  /* Inline content of a paragraph: lines joined, hard breaks for "  " or "\" endings. */
  function inlineLines(lines, parent, depth) {
    lines.forEach(function (line, index) {
      var last = index === lines.length - 1;
      var hard = !last && (/ {2,}$/.test(line) || /\\$/.test(line));
      var body = line.replace(/^\s+/, "");
      body = hard ? body.replace(/(\\| +)$/, "") : body.replace(/\s+$/, "");
      inline(body, parent, depth);
      if (!last) {
        if (hard) parent.appendChild(el("br"));
        else appendText(parent, "\n");
      }
    });
  }

  /* ---------------------------------------------------------------- blocks */

  var RE_FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)?.*$/;
  var RE_HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
  var RE_HR = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
  var RE_QUOTE = /^ {0,3}> ?(.*)$/;
  var RE_ITEM = /^(\s*)([-*+]|\d{1,9}[.)])(?:[ \t]+(.*)|[ \t]*$)/;
  var RE_TABLE_DELIM = /^\s*\|?\s*:?-+:?\s*(?:\|\s*:?-+:?\s*)*\|?\s*$/;

  function indentOf(s) {
    var n = 0;
    for (var k = 0; k < s.length; k++) {
      if (s.charAt(k) === " ") n += 1;
      else if (s.charAt(k) === "\t") n += 4;
      else break;
    }
    return n;
  }

  function splitRow(line) {
    var s = line.trim();
    if (s.charAt(0) === "|") s = s.slice(1);
    if (s.charAt(s.length - 1) === "|" && s.charAt(s.length - 2) !== "\\") s = s.slice(0, -1);
    var cells = [];
    var cell = "";
    for (var k = 0; k < s.length; k++) {
      var c = s.charAt(k);
      if (c === "\\" && s.charAt(k + 1) === "|") {
        cell += "|";
        k++;
      } else if (c === "|") {
        cells.push(cell.trim());
        cell = "";
      } else {
        cell += c;
      }
    }
    cells.push(cell.trim());
    return cells;
  }

  function startsBlock(line, next) {
    return (
      RE_FENCE.test(line) ||
      RE_HEADING.test(line) ||
      RE_HR.test(line) ||
      RE_QUOTE.test(line) ||
      RE_ITEM.test(line) ||
      (line.indexOf("|") !== -1 && next !== undefined && RE_TABLE_DELIM.test(next))
    );
  }

  function renderTable(lines, i, parent, depth) {
    var header = splitRow(lines[i]);
    var aligns = splitRow(lines[i + 1]).map(function (d) {
      var left = d.charAt(0) === ":";
      var right = d.charAt(d.length - 1) === ":";
      return left && right ? "center" : right ? "right" : left ? "left" : "";
    });
    var wrap = el("div", "md-table");
    var table = el("table");
    var thead = el("thead");
    var tr = el("tr");
    header.forEach(function (cell, c) {
      var th = el("th");
      if (aligns[c]) th.style.textAlign = aligns[c];
      inline(cell, th, depth + 1);
      tr.appendChild(th);
    });
    thead.appendChild(tr);
    table.appendChild(thead);
    var tbody = el("tbody");
    i += 2;
    while (i < lines.length && lines[i].trim() !== "" && lines[i].indexOf("|") !== -1) {
      var row = splitRow(lines[i]);
      var body = el("tr");
      for (var c = 0; c < header.length; c++) {
        var td = el("td");
        if (aligns[c]) td.style.textAlign = aligns[c];
        inline(row[c] || "", td, depth + 1);
        body.appendChild(td);
      }
      tbody.appendChild(body);
      i++;
    }
    table.appendChild(tbody);
    wrap.appendChild(table);
    parent.appendChild(wrap);
    return i;
  }

  /* List starting at lines[i]; items are rendered as blocks so they may nest. */
  function renderList(lines, i, parent, depth) {
    var first = lines[i].match(RE_ITEM);
    var baseIndent = indentOf(first[1]);
    var ordered = /\d/.test(first[2]);
    var list = el(ordered ? "ol" : "ul");
    if (ordered) {
      var startAt = parseInt(first[2], 10);
      if (startAt !== 1) list.setAttribute("start", String(startAt));
    }
    while (i < lines.length) {
      var m = lines[i].match(RE_ITEM);
      if (!m || indentOf(m[1]) !== baseIndent || /\d/.test(m[2]) !== ordered) break;
      var contentIndent = baseIndent + m[2].length + 1;
      var itemLines = [m[3] || ""];
      i++;
      while (i < lines.length) {
        var line = lines[i];
        if (line.trim() === "") {
          var next = lines[i + 1];
          if (next !== undefined && next.trim() !== "" && indentOf(next) > baseIndent) {
            itemLines.push("");
            i++;
            continue;
          }
          break;
        }
        var sub = line.match(RE_ITEM);
        if (sub && indentOf(sub[1]) <= baseIndent) break;
        if (!sub && indentOf(line) <= baseIndent && startsBlock(line, lines[i + 1])) break;
        itemLines.push(line.slice(Math.min(indentOf(line), contentIndent)));
        i++;
      }
      var li = el("li");
      var task = itemLines[0].match(/^\[([ xX])\]\s+(.*)$/);
      if (task) {
        var box = el("span", "md-task");
        box.textContent = task[1] === " " ? "\u2610 " : "\u2611 ";
        li.appendChild(box);
        itemLines[0] = task[2];
      }
      var tight = itemLines.indexOf("") === -1;
      var holder = el("div");
      blocks(itemLines, holder, depth + 1);
      if (tight && holder.firstChild && holder.firstChild.tagName === "P") {
        var p = holder.firstChild;
        while (p.firstChild) li.appendChild(p.firstChild);
        holder.removeChild(p);
      }
      while (holder.firstChild) li.appendChild(holder.firstChild);
      list.appendChild(li);
      while (i < lines.length && lines[i].trim() === "" && lines[i + 1] !== undefined) {
        var again = lines[i + 1].match(RE_ITEM);
        if (again && indentOf(again[1]) === baseIndent) i++;
        else break;
      }
    }
    parent.appendChild(list);
    return i;
  }

  function blocks(lines, parent, depth) {
    if (depth > MAX_DEPTH) {
      var pre = el("pre");
      pre.textContent = lines.join("\n");
      parent.appendChild(pre);
      return;
    }
    var i = 0;
    while (i < lines.length) {
      var line = lines[i];
      var m;
      if (line.trim() === "") {
        i++;
        continue;
      }
      if ((m = line.match(RE_FENCE))) {
        var fence = m[1];
        var code = [];
        i++;
        while (i < lines.length && lines[i].trim().indexOf(fence) !== 0) {
          code.push(lines[i]);
          i++;
        }
        i++;
        var pre2 = el("pre");
        var codeEl = el("code");
        codeEl.textContent = code.join("\n");
        pre2.appendChild(codeEl);
        parent.appendChild(pre2);
        continue;
      }
      if ((m = line.match(RE_HEADING))) {
        var level = Math.min(6, m[1].length + headingOffset);
        var h = el("h" + level, "md-h" + m[1].length);
        inline(m[2] || "", h, depth + 1);
        parent.appendChild(h);
        i++;
        continue;
      }
      if (RE_HR.test(line)) {
        parent.appendChild(el("hr"));
        i++;
        continue;
      }
      if (RE_QUOTE.test(line)) {
        var quoted = [];
        while (i < lines.length && lines[i].trim() !== "") {
          var q = lines[i].match(RE_QUOTE);
          quoted.push(q ? q[1] : lines[i]);
          i++;
        }
        var bq = el("blockquote");
        blocks(quoted, bq, depth + 1);
        parent.appendChild(bq);
        continue;
      }
      if (RE_ITEM.test(line)) {
        i = renderList(lines, i, parent, depth);
        continue;
      }
      if (line.indexOf("|") !== -1 && i + 1 < lines.length && RE_TABLE_DELIM.test(lines[i + 1])) {
        i = renderTable(lines, i, parent, depth);
        continue;
      }
      var para = [line];
      i++;
      while (i < lines.length && lines[i].trim() !== "" && !startsBlock(lines[i], lines[i + 1])) {
        para.push(lines[i]);
        i++;
      }
      var p = el("p");
      inlineLines(para, p, depth);
      parent.appendChild(p);
    }
  }

  var headingOffset = 3;

  function render(markdown, options) {
    headingOffset = options && typeof options.headingOffset === "number" ? options.headingOffset : 3;
    var fragment = document.createDocumentFragment();
    if (typeof markdown !== "string" || markdown === "") return fragment;
    var lines = markdown.replace(/\r\n?/g, "\n").split("\n");
    blocks(lines, fragment, 0);
    return fragment;
  }

  global.LiverCdsMarkdown = { render: render, safeUrl: safeUrl };
})(window);
