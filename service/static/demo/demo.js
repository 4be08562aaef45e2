/*
 * The demo page: discovery, a fixture-patient picker, the patient-view call, and the
 * cards rendered as an EHR shows them (summary, indicator, Markdown detail, suggestions
 * as buttons, links, accept / dismiss feedback).
 *
 * Everything coming from the service is put into the page with textContent, except the
 * cards' Markdown detail: the service renders it (POST demo/markdown: markdown-it-py with
 * raw HTML off, links limited to http, https and mailto, cleaned by the nh3 sanitiser) and
 * the page inserts that HTML. URLs of sources and links are allow-listed here as well.
 */
(function () {
  "use strict";

  var SERVICE_ID = "liver-metastasis-resectability";
  var ORDER_SERVICE_ID = "liver-directed-order-check";
  var INDICATOR_LABEL = { info: "Info", warning: "Warning", critical: "Critical" };
  var SAFE_PROTOCOLS = { "http:": true, "https:": true, "mailto:": true };
  var state = { service: null, patients: [], request: null };

  function $(id) {
    return document.getElementById(id);
  }
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }
  /* An absolute http, https or mailto URL we may put in href, or null. */
  function safeUrl(raw) {
    var url;
    try {
      url = new URL(String(raw).replace(/[\u0000-\u0020\u007f]/g, ""));
    } catch (e) {
      return null;
    }
    return SAFE_PROTOCOLS[url.protocol] ? url.href : null;
  }
  function safeLink(href, text) {
    var safe = safeUrl(href || "");
    var node = el(safe ? "a" : "span", null, text);
    if (safe) {
      node.setAttribute("href", safe);
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer");
    }
    return node;
  }
  function uuid4() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") return window.crypto.randomUUID();
    var b = new Uint8Array(16);
    window.crypto.getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }
  function setStatus(text, isError) {
    var status = $("status");
    status.textContent = text;
    status.className = "status " + (isError ? "error" : "muted");
  }

  /* Fetch JSON; resolves to {status, body} (body null when not JSON). */
  function getJson(url, options) {
    return fetch(url, options).then(function (response) {
      return response.text().then(function (text) {
        var body = null;
        try {
          body = text ? JSON.parse(text) : null;
        } catch (e) {
          body = null;
        }
        return { status: response.status, body: body };
      });
    });
  }
  function explain(result) {
    if (result.status === 401) {
      return "401: this service requires a signed JWT (LIVER_CDS_AUTH=required). The demo page works with auth off.";
    }
    var message = result.body && typeof result.body.error === "string" ? result.body.error : "no message";
    return "HTTP " + result.status + ": " + message;
  }

  /* ------------------------------------------------------------ discovery */

  function showServices(result) {
    var box = $("services");
    clear(box);
    if (result.status !== 200 || !result.body || !Array.isArray(result.body.services)) {
      box.appendChild(el("p", "status error", "Discovery failed. " + explain(result)));
      return;
    }
    result.body.services.forEach(function (service) {
      if (service.id === SERVICE_ID) state.service = service;
      var item = el("div", "service");
      item.appendChild(el("h3", null, service.title || service.id));
      if (service.description) item.appendChild(el("p", null, service.description));
      var dl = el("dl");
      function row(name, value) {
        dl.appendChild(el("dt", null, name));
        var dd = el("dd");
        if (value instanceof Node) dd.appendChild(value);
        else dd.textContent = value;
        dl.appendChild(dd);
      }
      row("id", service.id);
      row("hook", service.hook);
      var endpoint = el("code", null, "POST /cds-services/" + service.id);
      row("endpoint", endpoint);
      var keys = service.prefetch ? Object.keys(service.prefetch) : [];
      row("prefetch", keys.length ? keys.join(", ") : "none");
      item.appendChild(dl);
      box.appendChild(item);
    });
    if (!result.body.services.length) box.appendChild(el("p", "muted", "Discovery lists no services."));
  }

  /* ------------------------------------------------------------- patients */

  function showPatients(result) {
    var select = $("patient");
    clear(select);
    var patients = result.body && Array.isArray(result.body.patients) ? result.body.patients : [];
    state.patients = patients;
    if (result.status !== 200 || !patients.length) {
      select.appendChild(el("option", null, "No fixture patients"));
      $("patient-note").textContent =
        (result.body && result.body.note) || "Set LIVER_CDS_FIXTURES_DIR to a directory with manifest.json.";
      return;
    }
    var placeholder = el("option", null, "Choose a patient (" + patients.length + ")");
    placeholder.value = "";
    select.appendChild(placeholder);
    patients.forEach(function (p) {
      var option = el("option", null, p.title + (p.verdict ? "  (expected: " + p.verdict + ")" : ""));
      option.value = p.slug;
      select.appendChild(option);
    });
    select.disabled = false;
    var note = "Each choice fires patient-view with a new hookInstance.";
    var shift = result.body.shift_days;
    if (shift && result.body.evaluated_at) {
      note += " Dates are moved forward " + shift + " days so each record reads as it did on " +
        result.body.evaluated_at + ", the day its expected verdict was worked out for.";
    }
    $("patient-note").textContent = note;
  }

  function showPatientFacts(patient) {
    var dl = $("patient-facts");
    clear(dl);
    // The full assessment view of the same patient (served when the demo is on).
    $("full-view").hidden = !patient;
    $("link-full-view").href = patient ? "demo/view/" + encodeURIComponent(patient.slug) : "";
    if (!patient) {
      dl.hidden = true;
      return;
    }
    [
      ["patient id", patient.patient_id],
      ["expected verdict", patient.verdict || "no cards"],
      ["deciding rule", patient.rule],
      ["why", patient.why],
    ]
      .forEach(function (pair) {
        if (pair[1] === null || pair[1] === undefined || pair[1] === "") return;
        dl.appendChild(el("dt", null, pair[0]));
        dl.appendChild(el("dd", null, pair[1]));
      });
    dl.hidden = false;
  }

  function openChart(slug) {
    var patient = state.patients.filter(function (p) { return p.slug === slug; })[0];
    showPatientFacts(patient);
    clear($("cards"));
    $("exchange").hidden = true;
    if (!slug) {
      setStatus("Choose a patient to fire the patient-view hook.");
      return;
    }
    setStatus("Calling patient-view…");
    document.body.setAttribute("data-state", "loading");
    getJson("demo/fixtures/" + encodeURIComponent(slug))
      .then(function (fixture) {
        if (fixture.status !== 200 || !fixture.body) throw new Error(explain(fixture));
        var request = fixture.body;
        request.hookInstance = uuid4();
        state.request = request;
        $("request-json").textContent = JSON.stringify(request, null, 2);
        var started = performance.now();
        state.called = SERVICE_ID;
        return getJson("cds-services/" + SERVICE_ID, {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "application/json" },
          body: JSON.stringify(request),
        }).then(function (result) {
          return showResponse(result, performance.now() - started);
        });
      })
      .catch(function (error) {
        setStatus(String(error && error.message ? error.message : error), true);
      })
      .then(function () {
        document.body.setAttribute("data-state", "done");
      });
  }

  /* --------------------------------------------------------- order-sign */

  function showOrders(result) {
    var select = $("order");
    clear(select);
    var orders = result.body && Array.isArray(result.body.orders) ? result.body.orders : [];
    if (result.status !== 200 || !orders.length) {
      select.appendChild(el("option", null, "No order-sign fixtures"));
      return;
    }
    var placeholder = el("option", null, "Choose draft orders to sign (" + orders.length + ")");
    placeholder.value = "";
    select.appendChild(placeholder);
    orders.forEach(function (o) {
      var option = el("option", null, o.title || o.slug);
      option.value = o.slug;
      select.appendChild(option);
    });
    select.disabled = false;
  }

  function signOrders(slug) {
    clear($("cards"));
    $("exchange").hidden = true;
    showPatientFacts(null);
    if (!slug) return;
    setStatus("Calling order-sign…");
    document.body.setAttribute("data-state", "loading");
    getJson("demo/orders/" + encodeURIComponent(slug))
      .then(function (fixture) {
        if (fixture.status !== 200 || !fixture.body) throw new Error(explain(fixture));
        var request = fixture.body;
        request.hookInstance = uuid4();
        state.request = request;
        state.called = ORDER_SERVICE_ID;
        $("request-json").textContent = JSON.stringify(request, null, 2);
        var started = performance.now();
        return getJson("cds-services/" + ORDER_SERVICE_ID, {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "application/json" },
          body: JSON.stringify(request),
        }).then(function (result) {
          return showResponse(result, performance.now() - started);
        });
      })
      .catch(function (error) {
        setStatus(String(error && error.message ? error.message : error), true);
      })
      .then(function () {
        document.body.setAttribute("data-state", "done");
      });
  }

  /* ---------------------------------------------------------------- cards */

  function showResponse(result, elapsed) {
    $("response-json").textContent = result.body ? JSON.stringify(result.body, null, 2) : "(no JSON body)";
    $("exchange").hidden = false;
    if (result.status !== 200 || !result.body || !Array.isArray(result.body.cards)) {
      setStatus(explain(result), true);
      return;
    }
    var cards = result.body.cards;
    var took = " in " + Math.round(elapsed) + " ms";
    if (!cards.length) {
      setStatus(state.called === ORDER_SERVICE_ID
        ? "No cards" + took + ". Every draft order agrees with the liver assessment (or none is liver-directed)."
        : "No cards" + took + ". The service answers no cards when it finds no current liver malignancy.");
      return;
    }
    setStatus(cards.length + (cards.length === 1 ? " card" : " cards") + took + ".");
    var details = cards.map(function (card) { return card.detail ? String(card.detail) : ""; });
    return renderMarkdown(details).then(function (html) {
      var box = $("cards");
      cards.forEach(function (card, index) {
        box.appendChild(renderCard(card, html && html[index]));
      });
    });
  }

  /* The details as sanitised HTML from the service, or null (then shown as plain text). */
  function renderMarkdown(details) {
    if (!details.some(Boolean)) return Promise.resolve(null);
    return getJson("demo/markdown", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ markdown: details }),
    }).then(function (result) {
      var html = result.body && result.body.html;
      return result.status === 200 && Array.isArray(html) && html.length === details.length ? html : null;
    }, function () {
      return null;
    });
  }

  function renderCard(card, detailHtml) {
    var indicator = INDICATOR_LABEL[card.indicator] ? card.indicator : "info";
    var article = el("article", "card indicator-" + indicator);
    article.setAttribute("data-indicator", String(card.indicator));
    if (card.uuid) article.setAttribute("data-card-uuid", String(card.uuid));

    var head = el("div", "card-head");
    head.appendChild(el("span", "indicator", INDICATOR_LABEL[indicator]));
    head.appendChild(el("h3", "card-summary", card.summary));
    article.appendChild(head);

    var source = card.source || {};
    var sourceLine = el("p", "card-source");
    sourceLine.appendChild(document.createTextNode("Source: "));
    sourceLine.appendChild(source.url ? safeLink(source.url, source.label || source.url) : el("span", null, source.label || "unknown"));
    if (source.topic && (source.topic.display || source.topic.code)) {
      sourceLine.appendChild(document.createTextNode(" · topic: " + (source.topic.display || source.topic.code)));
    }
    article.appendChild(sourceLine);

    if (card.detail) {
      var detail = el("div", "card-detail");
      if (typeof detailHtml === "string") {
        detail.innerHTML = detailHtml; // sanitised by the service (service/demo_markdown.py)
      } else {
        detail.appendChild(el("p", "md-plain", card.detail));
      }
      article.appendChild(detail);
    }

    var selected = {};
    if (Array.isArray(card.suggestions) && card.suggestions.length) {
      article.appendChild(renderSuggestions(card, selected));
    }
    if (Array.isArray(card.links) && card.links.length) {
      var links = el("ul", "card-links");
      card.links.forEach(function (l) {
        var li = el("li");
        li.appendChild(safeLink(l.url, (l.label || l.url) + (l.type === "smart" ? " (SMART app)" : "")));
        links.appendChild(li);
      });
      article.appendChild(links);
    }
    if (card.uuid) article.appendChild(renderFeedback(card, selected));
    return article;
  }

  function renderSuggestions(card, selected) {
    var wrap = el("div", "suggestions");
    var how = card.selectionBehavior === "at-most-one" ? "choose at most one" : "choose any";
    wrap.appendChild(el("div", "suggestions-head", "Suggestions (" + how + ")"));
    var list = el("div", "suggestion-list");
    var actions = el("div", "actions-detail muted");
    card.suggestions.forEach(function (s) {
      var button = el("button", "suggestion" + (s.isRecommended ? " recommended" : ""));
      button.type = "button";
      button.setAttribute("aria-pressed", "false");
      if (s.uuid) button.setAttribute("data-suggestion-uuid", String(s.uuid));
      button.appendChild(el("span", "suggestion-label", s.label));
      if (s.isRecommended) button.appendChild(el("span", "badge", "Recommended"));
      var described = (s.actions || []).map(function (a) { return a.description; }).filter(Boolean);
      if (described.length) button.title = described.join("\n");
      button.addEventListener("click", function () {
        var on = button.getAttribute("aria-pressed") !== "true";
        if (on && card.selectionBehavior === "at-most-one") {
          Object.keys(selected).forEach(function (k) { delete selected[k]; });
          Array.prototype.forEach.call(list.children, function (b) { b.setAttribute("aria-pressed", "false"); });
        }
        button.setAttribute("aria-pressed", on ? "true" : "false");
        if (on) selected[s.uuid] = s;
        else delete selected[s.uuid];
        showActions(actions, selected);
      });
      list.appendChild(button);
    });
    wrap.appendChild(list);
    wrap.appendChild(actions);
    return wrap;
  }

  function showActions(box, selected) {
    clear(box);
    var keys = Object.keys(selected);
    if (!keys.length) return;
    box.appendChild(el("div", null, "Accepting would propose:"));
    var ul = el("ul");
    keys.forEach(function (k) {
      (selected[k].actions || []).forEach(function (a) {
        var resource = a.resource || {};
        var text = a.type + " " + (resource.resourceType || "resource");
        if (resource.status || resource.intent) text += " (" + [resource.status, resource.intent].filter(Boolean).join(", ") + ")";
        if (a.description) text += ": " + a.description;
        ul.appendChild(el("li", null, text));
      });
    });
    box.appendChild(ul);
  }

  function renderFeedback(card, selected) {
    var bar = el("div", "card-feedback");
    var accept = el("button", null, "Accept selected");
    accept.type = "button";
    var reason = el("select");
    reason.setAttribute("aria-label", "Override reason");
    var none = el("option", null, "Dismiss reason…");
    none.value = "";
    reason.appendChild(none);
    (card.overrideReasons || []).forEach(function (r, index) {
      var option = el("option", null, r.display || r.code);
      option.value = String(index);
      reason.appendChild(option);
    });
    var dismiss = el("button", null, "Dismiss card");
    dismiss.type = "button";
    var result = el("span", "feedback-result");

    function send(item) {
      item.card = card.uuid;
      item.outcomeTimestamp = new Date().toISOString();
      accept.disabled = dismiss.disabled = true;
      getJson("cds-services/" + (state.called || SERVICE_ID) + "/feedback", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ feedback: [item] }),
      }).then(function (r) {
        result.textContent = r.status === 200 ? "Feedback sent (" + item.outcome + ")." : "Feedback failed. " + explain(r);
        if (r.status !== 200) accept.disabled = dismiss.disabled = false;
      }, function (e) {
        result.textContent = "Feedback failed: " + e;
        accept.disabled = dismiss.disabled = false;
      });
    }
    accept.addEventListener("click", function () {
      var ids = Object.keys(selected);
      if (!ids.length) {
        result.textContent = "Select one or more suggestions first.";
        return;
      }
      send({ outcome: "accepted", acceptedSuggestions: ids.map(function (id) { return { id: id }; }) });
    });
    dismiss.addEventListener("click", function () {
      var item = { outcome: "overridden" };
      var chosen = (card.overrideReasons || [])[parseInt(reason.value, 10)];
      if (chosen) item.overrideReason = { reason: chosen };
      send(item);
    });
    bar.appendChild(accept);
    bar.appendChild(reason);
    bar.appendChild(dismiss);
    bar.appendChild(result);
    return bar;
  }

  /* ----------------------------------------------------------------- start */

  document.addEventListener("DOMContentLoaded", function () {
    var fail = function (e) { return { status: 0, body: { error: String(e) } }; };
    getJson("cds-services").then(showServices, function (e) { showServices(fail(e)); });
    getJson("demo/fixtures").then(showPatients, function (e) { showPatients(fail(e)); });
    $("patient").addEventListener("change", function (event) {
      openChart(event.target.value);
    });
    getJson("demo/orders").then(showOrders, function (e) { showOrders(fail(e)); });
    $("order").addEventListener("change", function (event) {
      signOrders(event.target.value);
    });
  });
})();
