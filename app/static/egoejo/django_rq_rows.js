// django-rq's job page: a click on a result row opens that result (its link's own click stays a link).
// Replaces django-rq's inline onclick handlers, which the Content-Security-Policy blocks.
"use strict";
document.addEventListener("click", function (event) {
    var row = event.target.closest("tr[data-href]");
    if (row && !event.target.closest("a")) {
        window.location = row.getAttribute("data-href");
    }
});
