//! The shop's own pages (maud: every interpolated value is escaped): the product with its
//! Buy button, and the landing pages for `success_url` and `cancel_url`. The payment page
//! itself is the library's.

use maud::{DOCTYPE, Markup, PreEscaped, html};

/// The merchant's page: one product and a Buy button carrying a fresh order key.
pub fn shop(order: &str, price: &str) -> Markup {
    frame(
        "Satoshi's Coffee",
        html! {
            header.brand {
                img src="/logo.svg" alt="";
                div { h1 { "Satoshi's Coffee" } p { "Roasted to order, paid in bitcoin" } }
            }
            div.product { span { "1 kg of single-origin beans" } strong #price { (price) } }
            form.buy method="post" action="/checkout" {
                input type="hidden" name="order" value=(order);
                button #buy.primary type="submit" { "Buy with bitcoin" }
            }
            p.testmode { "Test mode: payment requests are not payable" }
        },
    )
}

/// A landing page (`/thanks`, `/cancelled`) showing the query it was reached with.
pub fn landing(title: &str, query: Option<&str>) -> Markup {
    frame(
        title,
        html! {
            header.brand {
                img src="/logo.svg" alt="";
                div { h1 #landing { (title) } }
            }
            p { "Reached with the query " code #query { (query.unwrap_or("")) } }
            p { a href="/" { "Back to the shop" } }
        },
    )
}

fn frame(title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body { main.card { (content) } }
        }
    }
}

/// The shop's logo, served at `/logo.svg`: a cup on bitcoin orange.
pub const LOGO_SVG: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64" width="64" height="64">
<rect width="64" height="64" rx="14" fill="#f7931a"/>
<path d="M23 12c-2 3 2 5 0 8M30 12c-2 3 2 5 0 8M37 12c-2 3 2 5 0 8" fill="none" stroke="#fff" stroke-width="2.5" stroke-linecap="round"/>
<path d="M15 25h28v10a12 12 0 0 1-12 12h-4a12 12 0 0 1-12-12z" fill="#fff"/>
<path d="M43 28h2.5a5.5 5.5 0 0 1 0 11H41" fill="none" stroke="#fff" stroke-width="3"/>
<rect x="13" y="50" width="34" height="3" rx="1.5" fill="#fff"/>
</svg>
"##;

const STYLE: &str = r#"
* { box-sizing: border-box; }
body { margin: 0; min-height: 100vh; background: #f4f4f6; color: #1d1d1f;
       font: 16px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif;
       display: flex; justify-content: center; align-items: flex-start; padding: 24px 12px; }
.card { width: 100%; max-width: 420px; background: #fff; border-radius: 16px; padding: 20px;
        box-shadow: 0 1px 3px rgba(0,0,0,.08), 0 8px 24px rgba(0,0,0,.06); }
.brand { display: flex; gap: 14px; align-items: center; }
.brand img { width: 56px; height: 56px; border-radius: 12px; flex: none; }
.brand h1 { font-size: 20px; margin: 0; }
.brand p { margin: 2px 0 0; color: #6e6e73; font-size: 14px; }
.testmode { margin: 16px 0 0; padding: 6px 10px; border-radius: 8px; background: #fff4e5;
            color: #8a4b00; font-size: 13px; text-align: center; }
.product { margin: 20px 0; display: flex; justify-content: space-between; align-items: baseline; }
.product strong { font-size: 22px; }
button { font: inherit; cursor: pointer; border-radius: 8px; border: 1px solid #f7931a;
         background: #f7931a; color: #fff; font-weight: 600; width: 100%; padding: 12px; }
code { overflow-wrap: anywhere; }
"#;
