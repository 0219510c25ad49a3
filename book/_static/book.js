// The book's pages for every reader (WCAG 2.1 AA): what CSS alone cannot do.
"use strict";

// A printout or table wider than the column scrolls sideways: make it a named region that the
// keyboard can reach and scroll, and mark it for book.css's edge shadows. Checked again on
// resize, since whether it overflows depends on the window.
function markScrollers() {
  const scrollers = document.querySelectorAll(
    ".bd-article .cell_output pre, .bd-article .pst-scrollable-table-container");
  const counts = {};
  for (const element of scrollers) {
    const scrolls = element.scrollWidth > element.clientWidth + 1;
    element.classList.toggle("cvae-scrolls", scrolls);
    if (scrolls) {
      const what = element.matches("pre") ? "Printout" : "Table";
      counts[what] = (counts[what] || 0) + 1;  // regions of a page need distinct names
      element.setAttribute("tabindex", "0");
      element.setAttribute("role", "region");
      element.setAttribute("aria-label", `${what} ${counts[what]}, wider than the page: `
                                         + "scroll sideways");
    } else {
      for (const name of ["tabindex", "role", "aria-label"]) element.removeAttribute(name);
    }
  }
}

// Folds print open, so a printed lesson keeps its answers; the ones the reader had closed
// close again afterwards.
let closedForPrint = [];
window.addEventListener("beforeprint", () => {
  closedForPrint = [...document.querySelectorAll("details:not([open])")];
  for (const fold of closedForPrint) fold.open = true;
});
window.addEventListener("afterprint", () => {
  for (const fold of closedForPrint) fold.open = false;
  closedForPrint = [];
});

document.addEventListener("DOMContentLoaded", markScrollers);
window.addEventListener("load", markScrollers);
window.addEventListener("resize", markScrollers);
