"""Logging in and out in a real browser; pages need an administrator."""

from playwright.sync_api import Page, expect

from tests.browser.conftest import ADMIN_PASSWORD, LiveSite


def test_a_page_redirects_to_login_and_back_after_logging_in(
    anonymous_page: Page, live: LiveSite, admin_user: str
) -> None:
    page = anonymous_page
    page.goto(live.url("/mailbox/records"))
    expect(page).to_have_url(live.url("/login?next=%2Fmailbox%2Frecords"))
    page.get_by_label("User name").fill(admin_user)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(live.url("/mailbox/records"))
    expect(page.get_by_role("heading", name="Mail Sending Record")).to_be_visible()


def test_a_wrong_password_is_refused_with_the_user_name_kept(
    anonymous_page: Page, live: LiveSite, admin_user: str
) -> None:
    page = anonymous_page
    page.goto(live.url("/login"))
    page.get_by_label("User name").fill(admin_user)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("Wrong user name or password.")
    expect(page.get_by_label("User name")).to_have_value(admin_user)
    expect(page.get_by_label("Password")).to_have_value("")


def test_log_out_ends_the_session(admin_page: Page, live: LiveSite) -> None:
    page = admin_page
    expect(page.locator(".who")).to_have_text("admin")
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("status")).to_have_text("You are logged out.")
    page.goto(live.url("/mailbox"))
    expect(page).to_have_url(live.url("/login?next=%2Fmailbox"))


def test_the_setup_link_creates_the_first_administrator_and_logs_it_in(
    anonymous_page: Page, live: LiveSite
) -> None:
    page = anonymous_page
    token = live.setup_link.issue(live.rt)
    page.goto(live.url(f"/setup?token={token}"))
    page.get_by_label("User name").fill("ops")
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Create administrator").click()
    expect(page.locator("#password-error")).to_have_text("must be at least 10 characters")
    page.get_by_label("Password").fill("a long passphrase")
    page.get_by_role("button", name="Create administrator").click()
    expect(page.get_by_role("heading", name="Administrator created")).to_be_visible()
    page.get_by_role("link", name="Go to Mailbox").click()
    expect(page).to_have_url(live.url("/mailbox"))
    expect(page.locator(".who")).to_have_text("ops")
    page.goto(live.url(f"/setup?token={token}"))
    expect(page.get_by_role("heading", name="This setup link is no longer valid")).to_be_visible()
