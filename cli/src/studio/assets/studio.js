// Niceties only: every page works without this file.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Timestamps are rendered in UTC by the server; add the browser's local time.
  for (const el of document.querySelectorAll("time[datetime]")) {
    const d = new Date(el.getAttribute("datetime"));
    if (isNaN(d)) continue;
    const local = document.createElement("span");
    local.className = "local";
    local.textContent = "local: " + d.toLocaleString();
    el.after(local);
  }
  // JSON is checked before it is sent.
  for (const ta of document.querySelectorAll("textarea[data-json]")) {
    const check = () => {
      if (ta.value.trim() === "") { ta.setCustomValidity(""); return; }
      try { JSON.parse(ta.value); ta.setCustomValidity(""); }
      catch (e) { ta.setCustomValidity("not valid JSON: " + e.message); }
    };
    ta.addEventListener("input", check);
    check();
  }
  // "NULL" checkboxes disable their input, so the choice is visible.
  for (const box of document.querySelectorAll("input[data-null-for]")) {
    const input = document.getElementById(box.dataset.nullFor);
    const sync = () => { if (input) input.disabled = box.checked; };
    box.addEventListener("change", sync);
    sync();
  }
  // A filter row can be added without a round trip.
  const add = document.getElementById("add-filter");
  if (add) add.addEventListener("click", (ev) => {
    ev.preventDefault();
    const rows = document.querySelectorAll("fieldset.filter");
    const last = rows[rows.length - 1];
    const copy = last.cloneNode(true);
    for (const i of copy.querySelectorAll("input")) i.value = "";
    last.after(copy);
  });
});
