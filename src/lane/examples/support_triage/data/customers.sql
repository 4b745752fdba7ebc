-- The example's customer database. tools/crm.py builds data/customers.db from
-- this file the first time it is needed; delete the .db to rebuild it.
CREATE TABLE plans (
    name TEXT PRIMARY KEY,
    price_per_seat_usd INTEGER NOT NULL,
    support TEXT NOT NULL              -- what support the plan includes, quoted in replies
);
INSERT INTO plans VALUES
    ('Free', 0, 'answers from our community forum and email replies within 3 business days'),
    ('Team', 12, 'email replies within 1 business day'),
    ('Business', 24, 'priority replies within 4 hours and a named account manager');

CREATE TABLE customers (
    email TEXT PRIMARY KEY COLLATE NOCASE,
    name TEXT NOT NULL,
    company TEXT,
    plan TEXT NOT NULL REFERENCES plans(name),
    seats INTEGER NOT NULL,
    customer_since TEXT NOT NULL
);
INSERT INTO customers VALUES
    ('dana@northwind.example', 'Dana Reyes', 'Northwind Traders', 'Team', 18, '2023-04-02'),
    ('lee.park@brightlabs.example', 'Lee Park', 'Bright Labs', 'Business', 64, '2021-11-19'),
    ('sam@okafor-design.example', 'Sam Okafor', 'Okafor Design', 'Free', 1, '2025-08-30'),
    ('priya.nair@tallyho.example', 'Priya Nair', 'Tallyho Logistics', 'Team', 9, '2024-02-14'),
    ('marco@ferrovia.example', 'Marco Rossi', 'Ferrovia', 'Team', 12, '2022-06-07'),
    ('alex@chen-consulting.example', 'Alex Chen', 'Chen Consulting', 'Team', 2, '2024-10-01'),
    ('kim@harbor.example', 'Kim Walsh', 'Harbor Freight Co', 'Business', 140, '2020-01-15');
