// Hover cards: resting the pointer on a person's name (a[data-hovercard], from the person_link
// macro in templates/_person.html) or focusing it from the keyboard shows their card, fetched
// as an htmx fragment. The card is a non-modal dialog placed by the name: Tab from the name
// goes into it, Tab from its last control goes on past the name, Escape closes it and puts focus
// back on the name. The server lets the browser cache a card for a minute.
(() => {
  const SHOW_DELAY = 400;
  // Long enough to move the pointer across the gap from the name onto the card.
  const HIDE_DELAY = 250;
  const GAP = 8;
  const TABBABLE =
    "a[href], button:not([disabled]), input:not([type=hidden]):not([disabled]), select:not([disabled]), " +
    "textarea:not([disabled]), [tabindex]";

  let card = null;
  let owner = null; // the name whose card is shown, or about to be
  let showTimer = 0;
  let hideTimer = 0;
  let loading = null; // AbortController of the request under way
  let quiet = null; // a name this script is giving focus back to

  function cardElement() {
    if (!card) {
      card = document.createElement("div");
      card.id = "hovercard";
      card.className = "hovercard";
      card.setAttribute("role", "dialog");
      card.setAttribute("aria-labelledby", "hovercard-name");
      card.hidden = true;
      document.body.append(card);
    }
    return card;
  }

  const isOpen = () => card !== null && !card.hidden;
  const nameOf = (node) => (node instanceof Element ? node.closest("a[data-hovercard]") : null);
  const inCard = (node) => card !== null && node instanceof Node && card.contains(node);

  function schedule(link) {
    clearTimeout(hideTimer);
    if (owner === link && (isOpen() || showTimer || loading)) return;
    hide();
    owner = link;
    showTimer = setTimeout(() => {
      showTimer = 0;
      load(link);
    }, SHOW_DELAY);
  }

  async function load(link) {
    const controller = new AbortController();
    loading = controller;
    try {
      const response = await fetch(link.dataset.hovercard, {
        headers: { "HX-Request": "true" },
        credentials: "same-origin",
        signal: controller.signal,
      });
      // 404: not a colleague (any more); 204: signed out. Either way there is no card to show.
      if (response.status !== 200) return;
      const html = await response.text();
      if (owner === link) show(link, html);
    } catch (error) {
      if (error.name !== "AbortError") throw error;
    } finally {
      if (loading === controller) loading = null;
    }
  }

  function show(link, html) {
    const element = cardElement();
    element.innerHTML = html;
    // The Meet Now button inside is an htmx form.
    if (window.htmx) window.htmx.process(element);
    element.hidden = false;
    link.setAttribute("aria-expanded", "true");
    link.setAttribute("aria-controls", element.id);
    place(link, element);
  }

  // Below the name, or above it when there is no room below; never off the side of the page.
  function place(link, element) {
    const name = link.getBoundingClientRect();
    const { offsetWidth: width, offsetHeight: height } = element;
    const below = name.bottom + GAP + height <= window.innerHeight || name.top - GAP - height < 0;
    const top = below ? name.bottom + GAP : name.top - GAP - height;
    const widest = document.documentElement.clientWidth - width - GAP;
    element.style.top = `${top + window.scrollY}px`;
    element.style.left = `${Math.max(GAP, Math.min(name.left, widest)) + window.scrollX}px`;
  }

  // Focus inside the card goes back to the name, rather than to the top of the page.
  function hide() {
    clearTimeout(showTimer);
    clearTimeout(hideTimer);
    showTimer = 0;
    loading?.abort();
    loading = null;
    const link = owner;
    owner = null;
    if (!link) return;
    link.setAttribute("aria-expanded", "false");
    link.removeAttribute("aria-controls");
    if (!isOpen()) return;
    const focusWasInCard = inCard(document.activeElement);
    card.hidden = true;
    card.replaceChildren();
    if (focusWasInCard) {
      quiet = link; // focusin runs within focus(): the name must not reopen its card
      link.focus();
      quiet = null;
    }
  }

  function hideSoon() {
    clearTimeout(hideTimer);
    hideTimer = setTimeout(() => {
      // Someone reading the card from the keyboard keeps it, wherever the pointer wanders.
      if (!inCard(document.activeElement) && document.activeElement !== owner) hide();
    }, HIDE_DELAY);
  }

  function tabbables(root) {
    return [...root.querySelectorAll(TABBABLE)].filter(
      (element) => element.tabIndex >= 0 && element.getClientRects().length > 0,
    );
  }

  // What Tab would reach after the name if the card were not there.
  function nextAfter(link) {
    return tabbables(document).find(
      (element) =>
        !inCard(element) &&
        !link.contains(element) &&
        link.compareDocumentPosition(element) & Node.DOCUMENT_POSITION_FOLLOWING,
    );
  }

  document.addEventListener("pointerover", (event) => {
    if (event.pointerType === "touch") return; // a tap follows the link; no card in between
    const link = nameOf(event.target);
    if (link) schedule(link);
    else if (inCard(event.target)) clearTimeout(hideTimer);
  });

  document.addEventListener("pointerout", (event) => {
    if (!owner) return;
    const from = nameOf(event.target) === owner || inCard(event.target);
    const to = event.relatedTarget;
    const staying = to instanceof Node && (owner.contains(to) || inCard(to));
    if (from && !staying) hideSoon();
  });

  document.addEventListener("focusin", (event) => {
    const link = nameOf(event.target);
    if (link && link === quiet) return;
    // Keyboard focus only: a click on a name follows the link.
    if (link && link.matches(":focus-visible")) schedule(link);
    else if (inCard(event.target)) clearTimeout(hideTimer);
  });

  document.addEventListener("focusout", (event) => {
    if (!owner || !(nameOf(event.target) === owner || inCard(event.target))) return;
    const to = event.relatedTarget;
    const staying = to instanceof Node && (owner.contains(to) || inCard(to));
    if (!staying && !(card && card.matches(":hover"))) hide();
  });

  document.addEventListener("keydown", (event) => {
    if (!owner) return;
    if (event.key === "Escape") {
      event.preventDefault();
      hide();
      return;
    }
    if (event.key !== "Tab" || !isOpen()) return;
    const inside = tabbables(card);
    if (!inside.length) return;
    const link = owner;
    if (event.target === link && !event.shiftKey) {
      event.preventDefault();
      inside[0].focus();
    } else if (event.target === inside[0] && event.shiftKey) {
      event.preventDefault();
      link.focus();
    } else if (event.target === inside[inside.length - 1] && !event.shiftKey) {
      // On past the name; leaving the card closes it (focusout).
      const next = nextAfter(link);
      if (next) {
        event.preventDefault();
        next.focus();
      }
    }
  });

  window.addEventListener("resize", () => hide());
  // New search results replace the name the card belongs to: the card would point at nothing.
  document.addEventListener("htmx:afterSwap", () => {
    if (owner && !owner.isConnected) hide();
  });
})();
