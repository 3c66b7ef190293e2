// The bell's menu loads its list each time it opens. A <details> fires "toggle" both ways, and
// htmx can only tell opening from closing with an event filter, which needs eval (switched off).
document.addEventListener("toggle", (event) => {
  const menu = event.target;
  if (!(menu instanceof HTMLDetailsElement) || !menu.open || !menu.matches(".notifications-menu")) return;
  htmx.trigger(menu.querySelector(".notifications-dropdown"), "notifications-open");
}, true);
