// Follows a digest being sent: every second, the figures of the progress
// page from its JSON twin, until the digest is finished. The page is right
// without this script; it only saves reloading.
(function () {
  var box = document.getElementById('progress');
  if (!box || !window.fetch) return;
  function show(p) {
    box.querySelectorAll('[data-field]').forEach(function (el) {
      var name = el.getAttribute('data-field'), value = p[name];
      if (name === 'percent') { el.value = value; el.textContent = value + '%'; return; }
      if (name === 'last_error' || name === 'paused_reason') { el.hidden = !value; el.textContent = value || ''; return; }
      el.textContent = value === null || value === undefined ? '–' : value;
    });
    // The controls depend on the state: a new state reloads the page.
    if (p.state !== box.getAttribute('data-state')) { location.reload(); return false; }
    return !p.finished;
  }
  function tick() {
    fetch(box.getAttribute('data-progress'), { credentials: 'same-origin' })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (p) { if (p && show(p)) setTimeout(tick, 1000); });
  }
  setTimeout(tick, 500);
})();
