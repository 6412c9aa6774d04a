// The task browser's job page (app/templates/admin/queueing/backgroundjob/change_form.html): the job's
// state now, read every 3 seconds from the page's JSON endpoint (admin.py live_view), shown as text only.
"use strict";
(function () {
    var panel = document.getElementById("live-state");
    if (!panel) {
        return;
    }
    var url = panel.getAttribute("data-live-url");
    var summary = panel.querySelector("[data-role=live-summary]");
    var checked = panel.querySelector("[data-role=live-checked]");
    var shown = document.querySelector("[data-role=shown-state]");
    var timer = null;
    function refresh() {
        fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
            .then(function (response) {
                if (!response.ok) {
                    throw new Error("HTTP " + response.status);
                }
                return response.json();
            })
            .then(function (data) {
                summary.textContent = data.summary || data.redis || "(nothing)";
                if (shown && data.state) {
                    shown.textContent = data.state;
                }
                checked.textContent = "(checked " + new Date().toLocaleTimeString() + ")";
                if (data.ended_at && data.state !== "failed") {
                    window.clearInterval(timer);  // the row ended: nothing more will change
                }
            })
            .catch(function (error) {
                checked.textContent = "(could not refresh: " + error.message + ")";
            });
    }
    refresh();
    timer = window.setInterval(refresh, 3000);
}());
