-- Booknetic's tables, as a WordPress site with Booknetic 4.4.1 has them (table prefix wp_), for the tests.
--
-- Booknetic ships no CREATE TABLE statements: its installer fetches them from its vendor's server at
-- install time. The table and column names below are those its own code reads and writes: the models
-- under app/Models of Booknetic 4.4.1 (Appointment, AppointmentPrice, Customer, Service, ServiceCategory,
-- Staff, Location, Workflow, WorkflowAction) and the services that insert their rows, cross-checked
-- against Booknetic 3.8.18. The column TYPES are inferred from how that code uses them (times are Unix
-- seconds in integer columns: `'starts_at' => $appointment->getTimestamp()`, but a customer's created_at is
-- date text; prices are floats; data is JSON text); lengths and indexes are not known and are kept minimal.
-- Columns apptflow never reads (Google tokens, recurring payment settings, SaaS billing) are left out.

CREATE TABLE wp_bkntc_locations (
    id INT AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    image VARCHAR(255),
    address TEXT,
    phone_number VARCHAR(50),
    notes TEXT,
    latitude VARCHAR(50),
    longitude VARCHAR(50),
    is_active TINYINT DEFAULT 1,
    tenant_id INT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE wp_bkntc_service_categories (
    id INT AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    parent_id INT DEFAULT 0,
    tenant_id INT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE wp_bkntc_services (
    id INT AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    price FLOAT,
    category_id INT,
    is_visible TINYINT DEFAULT 1,
    duration INT,
    timeslot_length INT,
    buffer_before INT DEFAULT 0,
    buffer_after INT DEFAULT 0,
    notes TEXT,
    image VARCHAR(255),
    max_capacity INT DEFAULT 1,
    color VARCHAR(20),
    deposit_type VARCHAR(20),
    deposit FLOAT,
    is_active TINYINT DEFAULT 1,
    hide_price TINYINT DEFAULT 0,
    hide_duration TINYINT DEFAULT 0,
    tenant_id INT,
    created_by INT,
    updated_by INT,
    created_at INT,
    updated_at INT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE wp_bkntc_staff (
    id INT AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    user_id INT,
    email VARCHAR(255),
    phone_number VARCHAR(50),
    about TEXT,
    profile_image VARCHAR(255),
    locations VARCHAR(255),
    is_active TINYINT DEFAULT 1,
    profession VARCHAR(255),
    tenant_id INT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE wp_bkntc_customers (
    id INT AUTO_INCREMENT PRIMARY KEY,
    user_id INT,
    first_name VARCHAR(255),
    last_name VARCHAR(255),
    phone_number VARCHAR(50),
    email VARCHAR(255),
    birthdate DATE,
    notes TEXT,
    profile_image VARCHAR(255),
    gender VARCHAR(20),
    tenant_id INT,
    created_by INT,
    -- date text, not Unix seconds: date('Y-m-d') from the booking panel (CustomerService), date('Y-m-d H:i:s')
    -- from the admin panel (Customers/Ajax.php), nothing from a CSV import
    created_at VARCHAR(20)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE wp_bkntc_appointments (
    id INT AUTO_INCREMENT PRIMARY KEY,
    location_id INT,
    service_id INT,
    staff_id INT,
    customer_id INT,
    starts_at INT NOT NULL,
    ends_at INT NOT NULL,
    busy_from INT,
    busy_to INT,
    status VARCHAR(50),
    weight INT DEFAULT 1,
    payment_id VARCHAR(50),
    recurring_id VARCHAR(50),
    payment_method VARCHAR(50),
    payment_status VARCHAR(20),
    paid_amount FLOAT DEFAULT 0,
    note TEXT,
    locale VARCHAR(20),
    client_timezone VARCHAR(100),
    created_at INT,
    tenant_id INT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE wp_bkntc_appointment_prices (
    id INT AUTO_INCREMENT PRIMARY KEY,
    appointment_id INT NOT NULL,
    unique_key VARCHAR(100) NOT NULL,
    price FLOAT NOT NULL,
    negative_or_positive TINYINT NOT NULL DEFAULT 1
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE wp_bkntc_workflows (
    id INT AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(255),
    `when` VARCHAR(100),
    data TEXT,
    is_active TINYINT DEFAULT 1,
    tenant_id INT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE wp_bkntc_workflow_actions (
    id INT AUTO_INCREMENT PRIMARY KEY,
    workflow_id INT NOT NULL,
    driver VARCHAR(100),
    data TEXT,
    is_active TINYINT DEFAULT 1
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- WordPress's own options table: the site's time zone lives there (timezone_string, else gmt_offset), and
-- Booknetic's options (bkntc_<name>, bkntc_t<tenant>_<name> under Booknetic SaaS).
CREATE TABLE wp_options (
    option_id BIGINT AUTO_INCREMENT PRIMARY KEY,
    option_name VARCHAR(191) NOT NULL UNIQUE,
    option_value LONGTEXT NOT NULL,
    autoload VARCHAR(20) NOT NULL DEFAULT 'yes'
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
