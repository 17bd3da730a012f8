"""Word lists for the synthetic enterprise-mail generator.

Plain data: names (display form and ASCII address form), departments, company
words, top-level domains, subject lines and time-zone regions. Everything the
generator draws from lives here so :mod:`._generate` stays about structure.
"""

from __future__ import annotations

__all__: list[str] = []

#: (display form, address form). A few accented names show that display names and
#: addresses are normalised differently.
FIRST_NAMES: tuple[tuple[str, str], ...] = tuple(
    (n, n.lower()) for n in (
        "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara "
        "Richard Susan Joseph Jessica Thomas Sarah Charles Karen Christopher Lisa Daniel Nancy "
        "Matthew Betty Anthony Margaret Mark Sandra Donald Ashley Steven Kimberly Paul Emily "
        "Andrew Donna Joshua Michelle Kenneth Carol Kevin Amanda Brian Dorothy George Melissa "
        "Timothy Deborah Ronald Stephanie Edward Rebecca Jason Sharon Jeffrey Laura Ryan Cynthia "
        "Jacob Kathleen Gary Amy Nicholas Angela Eric Shirley Jonathan Anna Stephen Brenda Larry "
        "Pamela Justin Emma Scott Nicole Brandon Helen Benjamin Samantha Samuel Katherine Gregory "
        "Christine Alexander Debra Frank Rachel Patrick Carolyn Raymond Janet Jack Maria Dennis "
        "Olivia Jerry Heather Tyler Diane Aaron Julie Jose Joyce Adam Victoria Nathan Kelly Henry "
        "Christina Zachary Lauren Peter Joan Kyle Evelyn Noah Judith Ethan Megan Jeremy Andrea "
        "Walter Cheryl Christian Hannah Keith Jacqueline Roger Martha Terry Gloria Austin Teresa "
        "Sean Ann Gerald Sara Carl Madison Harold Frances Dylan Kathryn Arthur Janice Lawrence "
        "Jean Jordan Abigail Jesse Alice Bryan Judy Billy Sophia Bruce Grace Gabriel Denise "
        "Priya Wei Hiroshi Fatima Ahmed Yuki Lars Ingrid Sven Aisha Omar Mei Ravi Anika Pierre "
        "Claire Lukas Sofia Mateo Elena Ivan Olga Kwame Amara Chen Jun"
    ).split()
) + (("José", "jose"), ("Zoë", "zoe"), ("Renée", "renee"), ("Søren", "soren"),
     ("Björn", "bjorn"), ("Chloé", "chloe"), ("André", "andre"), ("Mónica", "monica"))

LAST_NAMES: tuple[tuple[str, str], ...] = tuple(
    (n, n.lower()) for n in (
        "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez "
        "Lopez Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson "
        "White Harris Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott "
        "Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter "
        "Roberts Gomez Phillips Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart "
        "Morris Morales Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed "
        "Kelly Howard Ramos Kim Cox Ward Richardson Watson Brooks Chavez Wood James Bennett Gray "
        "Mendoza Ruiz Hughes Price Alvarez Castillo Sanders Patel Myers Long Ross Foster Jimenez "
        "Powell Jenkins Perry Russell Sullivan Bell Coleman Butler Henderson Barnes Gonzales "
        "Fisher Vasquez Simmons Romero Jordan Patterson Alexander Hamilton Graham Reynolds "
        "Griffin Wallace Moreno West Cole Hayes Bryant Herrera Gibson Ellis Tran Medina Aguilar "
        "Stevens Murray Ford Castro Marshall Owens Harrison Fernandez McDonald Woods Washington "
        "Kennedy Wells Vargas Henry Chen Freeman Webb Tucker Guzman Burns Crawford Olson Simpson "
        "Porter Hunter Gordon Mendez Silva Shaw Snyder Mason Dixon Munoz Hunt Hicks Holmes "
        "Palmer Wagner Black Robertson Boyd Rose Stone Salazar Fox Warren Mills Meyer Rice "
        "Schmidt Garza Daniels Ferguson Nichols Stephens Soto Weaver Ryan Gardner Payne Grant "
        "Dunn Kumar Singh Tanaka Suzuki Yamamoto Wang Zhang Li Liu Novak Kowalski Larsen Berg "
        "Johansson Lindqvist Dubois Moreau Lefebvre Rossi Russo Bianchi Schneider Fischer Weber "
        "Becker Hoffmann Okafor Mensah Haddad Nasser Ivanova Petrov Kaur Sharma Gupta"
    ).split()
) + (("Müller", "muller"), ("García-López", "garcia-lopez"), ("O'Brien", "obrien"),
     ("Nuñez", "nunez"), ("Åberg", "aberg"), ("Sørensen", "sorensen"))

#: (name, relative size, is_finance). Executives and finance are sized separately.
DEPARTMENTS: tuple[tuple[str, float, bool], ...] = (
    ("Executive", 0.0, False),
    ("Finance", 0.0, True),
    ("Payroll", 0.0, True),
    ("Sales", 0.16, False),
    ("Marketing", 0.08, False),
    ("Engineering", 0.22, False),
    ("Operations", 0.12, False),
    ("Procurement", 0.04, False),
    ("Legal", 0.03, False),
    ("Human Resources", 0.05, False),
    ("IT", 0.06, False),
    ("Customer Support", 0.14, False),
    ("Research", 0.10, False),
)
EXECUTIVE_TITLES: tuple[str, ...] = ("CEO", "CFO", "COO", "CTO", "CHRO", "General Counsel")

#: Role mailboxes (local part, display name, department).
ROLE_MAILBOXES: tuple[tuple[str, str, str], ...] = (
    ("accounts.payable", "Accounts Payable", "Finance"),
    ("payroll", "Payroll Team", "Payroll"),
    ("info", "Info", "Customer Support"),
)

#: Tenant company names: first word + second word; the second words never appear in
#: external organisations' domains, so tenant and external domains cannot collide.
TENANT_WORDS_1: tuple[str, ...] = tuple(
    "north south east west blue red green silver golden bright clear swift true prime "
    "summit harbor river lake stone iron oak pine cedar maple aspen willow falcon eagle "
    "atlas polar solar lunar nova vertex apex crest beacon anchor".split()
)
TENANT_WORDS_2: tuple[str, ...] = tuple(
    "wind field ridge brook gate bridge wood point peak vale haven crest line path "
    "works holdings industries corp".split()
)
#: External organisation names: word + industry.
ORG_WORDS: tuple[str, ...] = tuple(
    "acme globex initech umbrella hooli vandelay wonka stark wayne tyrell cyberdyne "
    "soylent massive oscorp aperture veridian zenith quantum orbit pixel vector matrix "
    "kinetic fusion nimbus cobalt indigo amber onyx jade ruby topaz coral delta sigma "
    "omega alpha gamma kappa lambda tango metro urban rural coastal alpine desert tundra "
    "granite marble copper bronze titan vulcan mercury jupiter saturn neptune pluto "
    "aurora borealis zephyr mistral sirocco monsoon cyclone tornado horizon meridian "
    "equinox solstice keystone cornerstone milestone lighthouse compass sextant".split()
)
ORG_SUFFIXES: tuple[str, ...] = tuple(
    "supply logistics partners consulting systems labs group solutions services "
    "media capital ventures tech software analytics foods freight legal design "
    "energy health print staffing".split()
)
ORG_TLDS: tuple[tuple[str, float], ...] = (
    ("com", 0.62), ("net", 0.07), ("io", 0.06), ("co.uk", 0.07), ("de", 0.06),
    ("org", 0.04), ("fr", 0.03), ("com.au", 0.03), ("co", 0.02),
)
FREEMAIL_DOMAINS: tuple[str, ...] = (
    "gmail.com", "outlook.com", "yahoo.com", "hotmail.com", "icloud.com", "aol.com",
    "proton.me", "gmx.de", "mail.com",
)
BULK_BRANDS: tuple[str, ...] = tuple(
    "dailybrief techdigest marketwatchers tradeweekly industrynews deals4u shopmore "
    "travelhub eventsnow webinarpro learnfast cloudupdates securityweekly hrtoday "
    "financeinsider retailpulse designdaily devnews startupwire salesmonthly "
    "promoblast megasale bestoffers clickdeals couponworld".split()
)
BULK_LOCALS: tuple[str, ...] = ("newsletter", "news", "info", "marketing", "updates", "hello")
SAAS_BRANDS: tuple[str, ...] = tuple(
    "jira confluence github gitlab salesforce workday zoom slack docusign dropbox box "
    "servicenow zendesk hubspot expensify concur okta atlassian asana trello notion "
    "figma monday bamboohr greenhouse".split()
)
NOTIFY_LOCALS: tuple[str, ...] = ("no-reply", "noreply", "notifications", "do-not-reply", "alerts")

SUBJECTS_INTERNAL: tuple[str, ...] = (
    "Weekly sync", "Meeting notes", "Q3 planning", "Budget review", "Project update",
    "Quick question", "Draft for review", "Team offsite", "Status report", "Action items",
    "Hiring plan", "Roadmap", "Follow-up", "Lunch on Friday?", "Slides for tomorrow",
    "Customer escalation", "Release schedule", "Training session", "Policy update",
    "Expense report", "Travel approval", "Headcount", "Onboarding", "Design review",
    "Incident retro", "Quarterly results", "Board deck", "Vacation coverage",
)
SUBJECTS_BUSINESS: tuple[str, ...] = (
    "Invoice", "Purchase order", "Contract renewal", "Proposal", "Statement of work",
    "Delivery schedule", "Quote request", "Meeting next week", "Pricing", "Project kickoff",
    "Order confirmation", "Payment confirmation", "NDA", "Introduction", "Support ticket",
    "Account review", "Shipment update", "Renewal terms", "Feedback", "Demo follow-up",
)
SUBJECTS_FREEMAIL: tuple[str, ...] = (
    "Hi", "Catching up", "Photos", "Weekend plans", "Reference letter", "Coffee?",
    "Congrats!", "Question", "Your CV", "Long time no see",
)
SUBJECTS_BULK: tuple[str, ...] = (
    "This week's top stories", "Your weekly digest", "Exclusive offer inside",
    "Don't miss our webinar", "New features this month", "Last chance: 50% off",
    "Industry report", "Upcoming events", "Your monthly newsletter", "Trending now",
)
SUBJECTS_NOTIFY: tuple[str, ...] = (
    "You were mentioned", "New comment on your ticket", "Build succeeded", "Build failed",
    "Your meeting starts in 10 minutes", "Document shared with you", "Expense approved",
    "Password changed", "New sign-in detected", "Daily summary", "Task assigned to you",
)
SUBJECTS_EXEC_IMPERSONATION: tuple[str, ...] = (
    "Urgent request", "Are you available?", "Wire transfer needed today",
    "Confidential payment", "Quick favour", "Need this handled discreetly",
)
SUBJECTS_LOOKALIKE: tuple[str, ...] = (
    "RE: Invoice", "RE: Payment confirmation", "RE: Purchase order",
    "RE: Renewal terms", "RE: Outstanding balance",
)
SUBJECTS_PHISHING: tuple[str, ...] = (
    "Action required: your password expires today", "Voicemail received",
    "Verify your mailbox", "Document shared with you", "Unusual sign-in activity",
    "Your mailbox is almost full", "Pending payroll adjustment",
)
SUBJECTS_VENDOR_COMPROMISE: tuple[str, ...] = (
    "Updated bank details for upcoming payments", "Overdue invoice - action needed",
    "Change of remittance account", "Invoice attached", "Payment instructions",
)
SUBJECTS_LATERAL: tuple[str, ...] = (
    "Shared document: Q4 forecast", "Please review the attached", "Updated policy - sign in to read",
    "Shared document: salary review", "Can you check this file?",
)
PHISHING_BRANDS: tuple[str, ...] = (
    "office365", "microsoft", "m365", "docusign", "sharepoint", "onedrive", "outlook",
    "dropbox", "adobe", "paypal", "okta", "zoom",
)
PHISHING_WORDS: tuple[str, ...] = (
    "verify", "secure", "login", "account", "auth", "portal", "update", "support", "sso",
)
PHISHING_TLDS: tuple[str, ...] = ("com", "net", "info", "xyz", "top", "online", "site", "co")
PHISHING_SENDERS: tuple[tuple[str, str], ...] = (
    ("it-support", "IT Support"), ("security", "Security Team"), ("no-reply", "Microsoft 365"),
    ("helpdesk", "Helpdesk"), ("admin", "Mailbox Administrator"), ("docs", "DocuSign"),
)

#: Time zones the generator assigns to tenants, with their holiday region.
TIME_ZONES: tuple[tuple[str, str], ...] = (
    ("America/New_York", "us"), ("Europe/London", "eu"), ("Europe/Berlin", "eu"),
    ("America/Los_Angeles", "us"), ("Asia/Tokyo", "jp"), ("Australia/Sydney", "other"),
    ("Europe/Paris", "eu"), ("America/Chicago", "us"), ("Asia/Singapore", "other"),
)

#: Relative volume by local hour (0-23) for mail written by people.
HOUR_PROFILE: tuple[float, ...] = (
    1.0, 0.5, 0.3, 0.3, 0.3, 0.6, 2.0, 5.0, 10.0, 13.0, 13.0, 12.0,
    9.0, 11.0, 13.0, 12.0, 10.0, 7.0, 4.0, 3.0, 2.5, 2.0, 1.5, 1.0,
)
#: Relative volume by local hour for automated notifications.
HOUR_PROFILE_AUTOMATED: tuple[float, ...] = (
    2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 3.0, 4.0, 6.0, 7.0, 7.0, 7.0,
    6.0, 7.0, 7.0, 7.0, 6.0, 5.0, 4.0, 3.0, 3.0, 3.0, 2.0, 2.0,
)
