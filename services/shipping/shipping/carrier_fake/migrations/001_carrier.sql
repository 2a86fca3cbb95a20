-- The carrier's own records, in its own tables: a booking is a "consignment", known by a
-- ten-digit number, with the carrier's status codes 01 (booked), DP (dispatched), CX (cancelled).
CREATE SEQUENCE carrier_consignment_numbers START 1000;

CREATE TABLE carrier_consignments (
    consignment_no char(10) PRIMARY KEY,
    customer_ref char(36) NOT NULL UNIQUE,
    booking_record text NOT NULL,
    status_code char(2) NOT NULL CHECK (status_code IN ('01', 'DP', 'CX')),
    tracking_no text UNIQUE,
    booked_at timestamptz NOT NULL DEFAULT now(),
    changed_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((status_code = 'DP') = (tracking_no IS NOT NULL))
);
