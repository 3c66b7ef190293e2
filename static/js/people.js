// People search from the keyboard. Without this script both searches are plain GET forms.
// Top bar: a combobox whose listbox htmx fills as you type; arrows move the active option
// (aria-activedescendant, focus stays in the field), Enter opens it, Escape closes the list.
// People page: arrows move focus from the field through the result names (roving tabindex).
(() => {
  const RESULT_NAMES = "#people-results .person-link";

  // --- Top bar -------------------------------------------------------------------------------
  function topbar() {
    const input = document.getElementById("topbar-search");
    const list = document.getElementById("topbar-suggestions");
    return input && list ? { input, list } : null;
  }

  function options(list) {
    return [...list.querySelectorAll("[role=option]")];
  }

  function setOpen(parts, open) {
    parts.list.hidden = !open;
    parts.input.setAttribute("aria-expanded", String(open));
    if (!open) setActive(parts, null);
  }

  function setActive(parts, option) {
    for (const other of options(parts.list)) other.setAttribute("aria-selected", String(other === option));
    if (option) {
      parts.input.setAttribute("aria-activedescendant", option.id);
      option.scrollIntoView({ block: "nearest" });
    } else {
      parts.input.removeAttribute("aria-activedescendant");
    }
  }

  function moveActive(parts, step) {
    const all = options(parts.list);
    if (!all.length) return;
    if (parts.list.hidden) setOpen(parts, true);
    const current = all.findIndex((option) => option.getAttribute("aria-selected") === "true");
    const next = current === -1 ? (step > 0 ? 0 : all.length - 1) : (current + step + all.length) % all.length;
    setActive(parts, all[next]);
  }

  document.addEventListener("htmx:afterSwap", (event) => {
    const parts = topbar();
    if (!parts || event.detail.target !== parts.list) return;
    // A late answer for a field that has since been emptied or left stays closed.
    const wanted = parts.input.value.trim() !== "" && document.activeElement === parts.input;
    setOpen(parts, wanted && options(parts.list).length > 0);
  });

  document.addEventListener("keydown", (event) => {
    const parts = topbar();
    if (!parts || event.target !== parts.input) return;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      moveActive(parts, event.key === "ArrowDown" ? 1 : -1);
    } else if (event.key === "Enter") {
      const active = parts.list.hidden ? null : parts.list.querySelector("[aria-selected=true] a");
      // No active option: the form submits and the People page shows every match.
      if (active) {
        event.preventDefault();
        window.location.assign(active.href);
      }
    } else if (event.key === "Escape" && !parts.list.hidden) {
      event.preventDefault();
      setOpen(parts, false);
    }
  });

  document.addEventListener("input", (event) => {
    const parts = topbar();
    if (parts && event.target === parts.input && parts.input.value.trim() === "") setOpen(parts, false);
  });

  document.addEventListener("focusout", (event) => {
    const parts = topbar();
    if (!parts || event.target !== parts.input) return;
    // A click on an option moves focus out of the field before it lands: let it land first.
    if (parts.list.contains(event.relatedTarget)) return;
    setTimeout(() => setOpen(parts, false), 150);
  });

  // --- People page ---------------------------------------------------------------------------
  function resultNames() {
    return [...document.querySelectorAll(RESULT_NAMES)];
  }

  // One Tab stop for the whole list: the name last focused (the first, to begin with).
  function rove(names, current) {
    for (const name of names) name.tabIndex = name === current ? 0 : -1;
  }

  function setUpResults() {
    const names = resultNames();
    if (names.length) rove(names, names[0]);
    const results = document.getElementById("people-results");
    const status = document.getElementById("people-status");
    const said = results && results.querySelector("[data-status]");
    if (status && said) status.textContent = said.dataset.status;
  }

  document.addEventListener("DOMContentLoaded", () => {
    const names = resultNames();
    if (names.length) rove(names, names[0]);
  });
  document.addEventListener("htmx:afterSwap", (event) => {
    if (event.detail.target.id === "people-results") setUpResults();
  });

  document.addEventListener("keydown", (event) => {
    const field = document.getElementById("people-q");
    const names = resultNames();
    if (!field || !names.length) return;
    if (event.target === field) {
      if (event.key === "ArrowDown") {
        event.preventDefault();
        rove(names, names[0]);
        names[0].focus();
      }
      return;
    }
    const index = names.indexOf(event.target);
    if (index === -1) return;
    const moves = { ArrowDown: index + 1, ArrowRight: index + 1, ArrowUp: index - 1, ArrowLeft: index - 1, Home: 0, End: names.length - 1 };
    if (!(event.key in moves)) return;
    event.preventDefault();
    const next = moves[event.key];
    if (next < 0) {
      field.focus();
      return;
    }
    const target = names[Math.min(next, names.length - 1)];
    rove(names, target);
    target.focus();
  });
})();
