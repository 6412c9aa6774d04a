// django-rq 4.2's list pages were written for the admin's old jQuery plugin ($(...).actions()).
// Django 5.2's admin/js/actions.js starts itself on every page with selectable rows and
// expects the selection counter that the admin's changelist renders; django-rq's pages lack it.
// Loaded with `defer` just before actions.js, this adds the counter so actions.js finds it.
'use strict';
{
    const container = document.querySelector('div.actions');
    const boxes = document.querySelectorAll('tr input.action-select');
    if (container && boxes.length && !document.querySelector('span.action-counter')) {
        const counter = document.createElement('span');
        counter.className = 'action-counter';
        counter.dataset.actionsIcnt = String(boxes.length);
        container.appendChild(counter);
    }
}
