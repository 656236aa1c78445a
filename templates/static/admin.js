// The editors' pages work without this script; it adds a live preview
// while editing, tabs between the HTML and text parts, live progress while
// a send runs, and guards against double submits. The site's CSP allows no
// inline script, so everything hooks onto ids and data attributes.
(function () {
  "use strict";

  // Shows one part of the preview at a time once the script runs (without
  // it, both parts stay visible one under the other).
  function setupTabs(root) {
    var list = root.querySelector("[role=tablist]");
    if (!list) { return; }
    var tabs = list.querySelectorAll("[data-tab]");
    function select(name) {
      tabs.forEach(function (tab) {
        var chosen = tab.getAttribute("data-tab") === name;
        tab.setAttribute("aria-selected", chosen ? "true" : "false");
        tab.tabIndex = chosen ? 0 : -1;
        var panel = root.querySelector("[data-panel=" + tab.getAttribute("data-tab") + "]");
        if (panel) { panel.hidden = !chosen; }
      });
    }
    tabs.forEach(function (tab, i) {
      tab.addEventListener("click", function () { select(tab.getAttribute("data-tab")); });
      // Arrow keys move between tabs, as assistive technology expects.
      tab.addEventListener("keydown", function (event) {
        var step = event.key === "ArrowRight" ? 1 : event.key === "ArrowLeft" ? -1 : 0;
        if (!step) { return; }
        var next = tabs[(i + step + tabs.length) % tabs.length];
        select(next.getAttribute("data-tab"));
        next.focus();
      });
    });
    list.hidden = false;
    select("html");
  }

  // Reads a response as JSON whatever it is: an error page or a proxy's
  // answer becomes an error object instead of an exception.
  function readJson(response) {
    return response.text().then(function (body) {
      var data;
      try { data = JSON.parse(body); } catch (e) { data = null; }
      if (!data || typeof data !== "object") {
        data = { error: "The server answered " + response.status + "." };
      }
      return { ok: response.ok, data: data };
    });
  }

  // Re-renders the text being edited, ~600 ms after the last keystroke.
  function setupLivePreview() {
    var box = document.querySelector("[data-live-preview]");
    var source = document.getElementById("source");
    if (!box) { return; }
    setupTabs(box);
    if (!source || source.readOnly) { return; }
    var frame = box.querySelector("iframe");
    var text = box.querySelector("[data-preview-text]");
    var subject = box.querySelector("[data-preview-subject]");
    var error = box.querySelector("[data-preview-error]");
    var timer = null;
    var latest = 0;

    function showError(message) {
      error.textContent = message;
      error.hidden = false;
    }

    function refresh() {
      var ticket = ++latest;
      fetch(box.getAttribute("data-live-preview"), {
        method: "POST",
        credentials: "same-origin",
        headers: {
          "Content-Type": "text/markdown; charset=utf-8",
          "X-CSRF-Token": box.getAttribute("data-csrf")
        },
        body: source.value
      }).then(readJson).then(function (result) {
        // An older request answering late must not replace a newer preview.
        if (ticket !== latest) { return; }
        if (!result.ok) { showError(result.data.error || "The preview failed."); return; }
        error.hidden = true;
        frame.removeAttribute("src");
        frame.srcdoc = result.data.html;
        text.textContent = result.data.text;
        subject.textContent = result.data.subject;
      }).catch(function () {
        if (ticket === latest) { showError("The preview could not be reached; is the server up?"); }
      });
    }

    source.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(refresh, 600);
    });
    // A new report has no saved version to show: preview the starter text.
    if (!frame.getAttribute("src") && source.value.trim()) { refresh(); }
  }

  // Polls a running send every 2 s; reloads the page when its state
  // changes, since the buttons and sections depend on it.
  function setupProgress() {
    var box = document.querySelector("[data-progress-url]");
    if (!box) { return; }
    var url = box.getAttribute("data-progress-url");
    var state = box.getAttribute("data-state");
    var bar = document.getElementById("progress-bar");
    var failures = box.querySelector("[data-failures]");

    function cell(row, value) {
      var td = document.createElement("td");
      td.textContent = value;
      row.appendChild(td);
    }

    function show(progress) {
      bar.value = progress.percent;
      bar.textContent = progress.percent + "%";
      box.querySelectorAll("[data-field]").forEach(function (el) {
        var name = el.getAttribute("data-field");
        var value = progress[name];
        if (name === "rate_per_sec") { value = Number(value || 0).toFixed(1); }
        if (value !== undefined) { el.textContent = value; }
      });
      if (failures && progress.failures && progress.failures.length) {
        failures.textContent = "";
        progress.failures.forEach(function (f) {
          var row = document.createElement("tr");
          cell(row, f.recipient);
          cell(row, f.reason);
          cell(row, f.attempts);
          failures.appendChild(row);
        });
      }
    }

    function poll() {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(readJson)
        .then(function (result) {
          if (!result.ok || !result.data.state) { throw new Error("no progress"); }
          if (result.data.state !== state) {
            window.location.assign(box.getAttribute("data-page-url"));
            return;
          }
          show(result.data);
          setTimeout(poll, 2000);
        })
        .catch(function () {
          // Keep the last numbers and try again, less often.
          setTimeout(poll, 10000);
        });
    }
    setTimeout(poll, 2000);
  }

  // Forms marked data-once disable their buttons once submitted (the
  // server also ignores a repeated send); data-confirm asks first.
  function setupForms() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
      });
    });
    var once = document.querySelectorAll("form[data-once]");
    function enable(on) {
      once.forEach(function (form) {
        form.querySelectorAll("button").forEach(function (b) { b.disabled = !on; });
      });
    }
    once.forEach(function (form) {
      form.addEventListener("submit", function () {
        // After this handler, so the form's own submission goes through.
        setTimeout(function () { enable(false); }, 0);
      });
    });
    // Coming back to the page from the history must not find it disabled.
    window.addEventListener("pageshow", function () { enable(true); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setupLivePreview();
    setupProgress();
    setupForms();
  });
}());
