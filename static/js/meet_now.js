// Meet Now: the Create menu's dialog, the people picker, and the room tab.
// Popup blockers allow a new tab only while handling the click itself, so the tab is opened
// on submit and pointed at the room once the server has accepted the invitations.
(() => {
  const pendingTabs = new WeakMap();

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-opens-room")) return;
    const key = form.querySelector("input[name=request_key]");
    // A double-click resends the same key, so the server makes one meeting of it.
    if (key && !key.value) key.value = randomKey();
    const tab = window.open("", "_blank");
    if (tab) {
      tab.opener = null;
      pendingTabs.set(form, tab);
    }
  }, true);

  document.addEventListener("meeting-started", (event) => {
    const form = event.target.closest("form");
    if (!form) return;
    const tab = pendingTabs.get(form);
    pendingTabs.delete(form);
    if (tab) tab.location.href = event.detail.roomUrl;
    const key = form.querySelector("input[name=request_key]");
    if (key) key.value = event.detail.nextKey;
    const dialog = form.closest("dialog");
    if (dialog) dialog.close();
  });

  document.addEventListener("htmx:afterRequest", (event) => {
    const form = event.detail.elt instanceof HTMLFormElement ? event.detail.elt : null;
    const tab = form && pendingTabs.get(form);
    // Still pending: the invitations were refused, so there is no meeting to open.
    if (tab) {
      pendingTabs.delete(form);
      tab.close();
    }
  });

  document.addEventListener("htmx:responseError", (event) => {
    if (!event.detail.elt.closest("[data-opens-room]")) return;
    showToast(event.detail.xhr.responseText || "That did not work. Try again.", true);
  });

  function randomKey() {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function showToast(text, isError) {
    const toast = document.createElement("div");
    toast.className = isError ? "toast toast-error" : "toast";
    toast.setAttribute("role", isError ? "alert" : "status");
    toast.textContent = text;
    document.getElementById("toasts").append(toast);
  }

  // Toasts leave by themselves after a while, except one that asks the host to act.
  new MutationObserver((records) => {
    for (const record of records) {
      for (const node of record.addedNodes) {
        if (node instanceof HTMLElement && !node.hasAttribute("data-persist")) {
          setTimeout(() => node.remove(), 8000);
        }
      }
    }
  }).observe(document.getElementById("toasts"), { childList: true });

  // The Create menu's Meet Now loads its form into a modal dialog, shown once htmx has
  // settled (processed) the form: typing sooner would reach a field that does not search yet.
  document.addEventListener("htmx:afterSettle", (event) => {
    const dialog = event.detail.target.closest("dialog");
    if (!dialog || dialog.open) return;
    for (const menu of document.querySelectorAll("details.menu[open]")) menu.open = false;
    dialog.showModal();
    dialog.querySelector("#picker-input")?.focus();
  });
  document.addEventListener("click", (event) => {
    event.target.closest("[data-close-toast]")?.closest(".toast")?.remove();
    const close = event.target.closest("[data-close-dialog]");
    if (close && close.closest("dialog")) close.closest("dialog").close();
  });
  document.addEventListener("close", (event) => {
    // A fresh form (and request key) next time the dialog opens.
    if (event.target.id === "meet-now-dialog") event.target.querySelector("#meet-now-dialog-body").replaceChildren();
  }, true);

  // The people picker: suggestions as you type, chosen people as chips.
  function options() {
    return [...document.querySelectorAll("#picker-options [role=option]")];
  }

  function highlight(option) {
    const input = document.getElementById("picker-input");
    for (const other of options()) other.setAttribute("aria-selected", String(other === option));
    if (option) {
      input.setAttribute("aria-activedescendant", option.id);
      option.scrollIntoView({ block: "nearest" });
    } else {
      input.removeAttribute("aria-activedescendant");
    }
  }

  function clearOptions() {
    const list = document.getElementById("picker-options");
    if (list) list.replaceChildren();
    const input = document.getElementById("picker-input");
    if (input) {
      input.setAttribute("aria-expanded", "false");
      input.removeAttribute("aria-activedescendant");
    }
  }

  function choose(option) {
    const chips = document.getElementById("picker-chips");
    const input = document.getElementById("picker-input");
    const id = option.dataset.id;
    if (!chips.querySelector(`input[name=invitee][value="${CSS.escape(id)}"]`)) {
      const chip = document.createElement("span");
      chip.className = "chip";
      const hidden = document.createElement("input");
      hidden.type = "hidden";
      hidden.name = "invitee";
      hidden.value = id;
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "chip-remove";
      remove.setAttribute("aria-label", `Remove ${option.dataset.name}`);
      remove.textContent = "×";
      chip.append(hidden, option.dataset.name + " ", remove);
      chips.append(chip);
    }
    input.value = "";
    clearOptions();
    input.focus();
  }

  document.addEventListener("htmx:afterSwap", (event) => {
    if (event.detail.target.id !== "picker-options") return;
    const input = document.getElementById("picker-input");
    input.setAttribute("aria-expanded", String(options().length > 0));
    highlight(options()[0]);
  });

  document.addEventListener("keydown", (event) => {
    const input = event.target;
    if (!(input instanceof HTMLInputElement) || input.id !== "picker-input") return;
    const all = options();
    const current = all.findIndex((option) => option.getAttribute("aria-selected") === "true");
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      if (!all.length) return;
      const step = event.key === "ArrowDown" ? 1 : -1;
      highlight(all[(current + step + all.length) % all.length]);
    } else if (event.key === "Enter") {
      // Enter picks a person; it never sends the form from the name field.
      event.preventDefault();
      if (current >= 0) choose(all[current]);
    } else if (event.key === "Escape" && all.length) {
      event.preventDefault();
      event.stopPropagation();
      clearOptions();
    } else if (event.key === "Backspace" && input.value === "") {
      document.querySelector("#picker-chips .chip:last-child")?.remove();
    }
  });

  document.addEventListener("click", (event) => {
    const option = event.target.closest("#picker-options [role=option]");
    if (option) {
      choose(option);
      return;
    }
    const remove = event.target.closest(".chip-remove");
    if (remove) {
      remove.closest(".chip").remove();
      document.getElementById("picker-input")?.focus();
    }
  });
})();
