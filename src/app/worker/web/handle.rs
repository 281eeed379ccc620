//! The page's handle on the compute Web Worker: it starts `worker.js`, queues commands until the
//! worker says "ready", and keeps the last [`Shared`] state the worker posted (and offers the
//! files of an export as downloads).

use super::super::{Cmd, Shared};
use crate::app::settings::Settings;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

/// The page's handle on the compute worker: the same API as the native worker thread.
pub struct Worker {
    worker: Option<web_sys::Worker>,
    shared: Rc<RefCell<Shared>>,
    /// Commands sent before the worker said "ready" (a module worker sets its handler only once
    /// the wasm is loaded; earlier messages would be lost). `None` once it is ready.
    pending: Rc<RefCell<Option<Vec<String>>>>,
    _handlers: Vec<Closure<dyn FnMut(JsValue)>>,
    /// Commands sent so far ([`Shared::handled`] counts those the worker took).
    sent: std::cell::Cell<u64>,
    /// The page's context, once drawn: a posted state asks it for a repaint (the page redraws
    /// only when something changed).
    repaint: Rc<RefCell<Option<egui::Context>>>,
}

impl Worker {
    pub fn spawn(settings: Settings) -> Worker {
        let shared = Rc::new(RefCell::new(Shared {
            message: Some("starting the compute worker…".into()),
            running: true,
            ..Shared::default()
        }));
        let opts = web_sys::WorkerOptions::new();
        opts.set_type(web_sys::WorkerType::Module);
        let w = match web_sys::Worker::new_with_options("./worker.js", &opts) {
            Ok(w) => w,
            Err(e) => {
                shared.borrow_mut().message = Some(format!(
                    "cannot start the compute worker (./worker.js): {e:?}. The toy runs without it."
                ));
                return Worker {
                    worker: None,
                    shared,
                    pending: Rc::default(),
                    _handlers: Vec::new(),
                    sent: std::cell::Cell::new(0),
                    repaint: Rc::default(),
                };
            }
        };
        let pending: Rc<RefCell<Option<Vec<String>>>> = Rc::new(RefCell::new(Some(Vec::new())));
        let repaint: Rc<RefCell<Option<egui::Context>>> = Rc::default();
        let rp = repaint.clone();
        let sh = shared.clone();
        let (pend, wk) = (pending.clone(), w.clone());
        let on_message = Closure::<dyn FnMut(JsValue)>::new(move |ev: JsValue| {
            let Ok(ev) = ev.dyn_into::<web_sys::MessageEvent>() else {
                return;
            };
            let Ok(arr) = ev.data().dyn_into::<js_sys::Array>() else {
                return;
            };
            match arr.get(0).as_string().as_deref() {
                Some("ready") => {
                    for t in pend.borrow_mut().take().unwrap_or_default() {
                        let _ = wk.post_message(&JsValue::from_str(&t));
                    }
                }
                Some("snapshot") => {
                    if let Some(c) = rp.borrow().as_ref() {
                        c.request_repaint();
                    }
                    match arr.get(1).as_string().map(|t| serde_json::from_str(&t)) {
                        Some(Ok(s)) => *sh.borrow_mut() = s,
                        Some(Err(e)) => {
                            sh.borrow_mut().message =
                                Some(format!("bad message from the worker: {e}"))
                        }
                        None => {}
                    }
                }
                Some("file") => {
                    let name = arr
                        .get(1)
                        .as_string()
                        .unwrap_or_else(|| "export.bin".into());
                    if let Err(e) = download(&name, &arr.get(2)) {
                        sh.borrow_mut().message = Some(format!("download of {name} failed: {e:?}"));
                    }
                }
                _ => {}
            }
        });
        let sh = shared.clone();
        let on_error = Closure::<dyn FnMut(JsValue)>::new(move |ev: JsValue| {
            let what = ev
                .dyn_ref::<web_sys::ErrorEvent>()
                .map(|e| e.message())
                .unwrap_or_else(|| "unknown error".into());
            let mut s = sh.borrow_mut();
            s.running = false;
            s.message = Some(format!(
                "the compute worker failed: {what}. Reload the page; the toy runs without it."
            ));
        });
        w.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        w.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        let me = Worker {
            worker: Some(w),
            shared,
            pending,
            _handlers: vec![on_message, on_error],
            sent: std::cell::Cell::new(0),
            repaint,
        };
        me.send(Cmd::Reset(settings));
        me
    }

    /// Have a posted state ask `ctx` for a repaint.
    pub fn set_repaint(&self, ctx: &egui::Context) {
        let mut r = self.repaint.borrow_mut();
        if r.is_none() {
            *r = Some(ctx.clone());
        }
    }

    pub fn send(&self, c: Cmd) {
        let (Some(w), Ok(t)) = (&self.worker, serde_json::to_string(&c)) else {
            return;
        };
        self.sent.set(self.sent.get() + 1);
        match self.pending.borrow_mut().as_mut() {
            Some(p) => p.push(t),
            None => {
                let _ = w.post_message(&JsValue::from_str(&t));
            }
        }
    }

    pub fn snapshot(&self) -> Shared {
        self.shared.borrow().clone()
    }

    /// Commands sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.get()
    }
}

/// Offer `bytes` (a Uint8Array) as a download named `name`.
fn download(name: &str, bytes: &JsValue) -> Result<(), JsValue> {
    let doc = web_sys::window()
        .and_then(|w| w.document())
        .ok_or_else(|| JsValue::from_str("no document"))?;
    let blob = web_sys::Blob::new_with_u8_array_sequence(&js_sys::Array::of1(bytes))?;
    let url = web_sys::Url::create_object_url_with_blob(&blob)?;
    let a: web_sys::HtmlAnchorElement = doc.create_element("a")?.dyn_into()?;
    a.set_href(&url);
    a.set_download(name);
    a.click();
    web_sys::Url::revoke_object_url(&url)
}
