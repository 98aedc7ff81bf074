// Mail Sending Record: the browser's time zone for the dates, tidy filter links, row links.
// The page works without this script (dates are then UTC days).
"use strict";

function browserTimeZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch (_) {
    return "";
  }
}

// The "Date Interval" days are days where the administrator is, unless the link says otherwise.
function fillTimeZone(form, zone) {
  const field = form.querySelector("input[data-time-zone]");
  if (field && !field.value && zone) {
    field.value = zone;
    for (const name of form.querySelectorAll(".zone-name")) {
      name.textContent = zone;
    }
  }
}

// Leave empty filters (and the zone, when no date is given) out of the address.
function tidyOnSubmit(form) {
  form.addEventListener("submit", () => {
    const dated = ["since", "until"].some((name) => form.elements[name] && form.elements[name].value);
    for (const el of form.querySelectorAll("input[name], select[name]")) {
      const unneeded = el.name === "tz" ? !dated : el.name === "limit" ? el.value === "50" : !el.value;
      if (unneeded) {
        el.disabled = true;
      }
    }
  });
  // Back to this page from the history: the fields must be usable again.
  window.addEventListener("pageshow", () => {
    for (const el of form.querySelectorAll("input[name], select[name]")) {
      el.disabled = false;
    }
  });
}

// A click anywhere on a row opens its record, unless it lands on a link or selects text.
function rowLinks(table) {
  table.addEventListener("click", (event) => {
    const row = event.target.closest("tr[data-href]");
    if (!row || event.target.closest("a, button, input, select")) {
      return;
    }
    if (window.getSelection && String(window.getSelection()).length > 0) {
      return;
    }
    window.location.assign(row.dataset.href);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const zone = browserTimeZone();
  const form = document.querySelector("form.record-filters");
  if (form) {
    fillTimeZone(form, zone);
    tidyOnSubmit(form);
  }
  for (const name of document.querySelectorAll(".display-zone")) {
    name.textContent = zone || "UTC";
  }
  const table = document.querySelector("table.records-table");
  if (table) {
    rowLinks(table);
  }
});
