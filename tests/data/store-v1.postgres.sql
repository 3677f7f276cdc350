--
-- PostgreSQL database dump
--

\restrict qjVQvodyThSnt1IcncC9lZKRIo5z8W0bmgsOHBsBZOuruGiAzGrtZ3Pd7FRM437

-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: cameras; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.cameras (
    id integer NOT NULL,
    external_id character varying(128) NOT NULL,
    name character varying(200) NOT NULL,
    unit_id integer NOT NULL,
    maintenance_unit_id integer,
    contact_name character varying(100),
    contact_phone character varying(40),
    category character varying(64) NOT NULL,
    location character varying(200),
    latitude double precision,
    longitude double precision,
    camera_type character varying(32) NOT NULL,
    vendor character varying(100),
    model character varying(100),
    status character varying(16) NOT NULL,
    last_seen_at timestamp with time zone,
    main_url character varying(1024),
    sub_url character varying(1024),
    onvif_url character varying(1024),
    transport character varying(8) NOT NULL,
    username character varying(128),
    password_enc text,
    tags json NOT NULL,
    enabled boolean NOT NULL,
    valid_from timestamp with time zone,
    valid_until timestamp with time zone,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL
);


--
-- Name: cameras_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.cameras_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: cameras_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.cameras_id_seq OWNED BY public.cameras.id;


--
-- Name: meta; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.meta (
    key character varying(64) NOT NULL,
    value text NOT NULL
);


--
-- Name: tokens; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.tokens (
    id integer NOT NULL,
    user_id integer NOT NULL,
    digest character varying(64) NOT NULL,
    name character varying(100),
    kind character varying(16) NOT NULL,
    created_at timestamp with time zone NOT NULL,
    expires_at timestamp with time zone,
    revoked_at timestamp with time zone,
    last_used_at timestamp with time zone
);


--
-- Name: tokens_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.tokens_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: tokens_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.tokens_id_seq OWNED BY public.tokens.id;


--
-- Name: units; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.units (
    id integer NOT NULL,
    code character varying(64) NOT NULL,
    name character varying(200) NOT NULL,
    level character varying(16) NOT NULL,
    parent_id integer,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL
);


--
-- Name: units_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.units_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: units_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.units_id_seq OWNED BY public.units.id;


--
-- Name: users; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.users (
    id integer NOT NULL,
    username character varying(64) NOT NULL,
    display_name character varying(200),
    unit_id integer NOT NULL,
    role character varying(32) NOT NULL,
    password_hash text,
    disabled boolean NOT NULL,
    service boolean NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL
);


--
-- Name: users_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.users_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: users_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.users_id_seq OWNED BY public.users.id;


--
-- Name: cameras id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.cameras ALTER COLUMN id SET DEFAULT nextval('public.cameras_id_seq'::regclass);


--
-- Name: tokens id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tokens ALTER COLUMN id SET DEFAULT nextval('public.tokens_id_seq'::regclass);


--
-- Name: units id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.units ALTER COLUMN id SET DEFAULT nextval('public.units_id_seq'::regclass);


--
-- Name: users id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.users ALTER COLUMN id SET DEFAULT nextval('public.users_id_seq'::regclass);


--
-- Data for Name: cameras; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.cameras (id, external_id, name, unit_id, maintenance_unit_id, contact_name, contact_phone, category, location, latitude, longitude, camera_type, vendor, model, status, last_seen_at, main_url, sub_url, onvif_url, transport, username, password_enc, tags, enabled, valid_from, valid_until, created_at, updated_at) FROM stdin;
2	zj-hz-0002	钱塘江大桥 北岸	2	\N	\N	\N	bridge	钱塘江大桥北岸	30.2	120.14	fixed	\N	\N	offline	\N	rtsp://10.1.2.4/live	\N	\N	udp	\N	\N	["flood"]	t	2024-05-31 16:00:00+00	2024-10-07 16:00:00+00	2026-11-23 22:09:44.758325+00	2026-11-23 22:09:44.758325+00
3	zj-yh-0003	余杭 临平隧道 入口	3	\N	\N	\N	tunnel	\N	\N	\N	dome	大华	\N	fault	\N	rtsp://10.9.0.7:554/cam/realmonitor?channel=1&subtype=0	\N	\N	tcp	operator	gAAAAABrBLmoMixAnmCQSVx2eI0KRVgMPTHNsB3RxrooiMQxUvsSjKXoz-JA08jwGDnRN_84U00axRbQjGqtYTzDKv17gIBUoQ==	[]	f	\N	\N	2026-11-23 22:09:44.766105+00	2026-11-23 22:09:44.766105+00
4	zj-jj-0004	西湖 断桥 路口	4	\N	\N	\N	public_security	\N	\N	\N	thermal	\N	\N	unknown	\N	demo:	\N	\N	tcp	\N	\N	[]	t	\N	\N	2026-11-23 22:09:44.771673+00	2026-11-23 22:09:44.771673+00
5	zj-nb-0005	宁波舟山港 北仑 3 号泊位	5	5	\N	\N	port	北仑港区	29.93	121.86	fixed	\N	\N	online	\N	rtsps://10.20.0.5:322/stream1	\N	\N	tcp	\N	\N	[]	t	\N	\N	2026-11-23 22:09:44.777582+00	2026-11-23 22:09:44.777582+00
1	zj-hz-0001	G60 杭金衢高速 K12+300	2	3	王工	0571-8888 0000	expressway	杭州市余杭区 G60 K12+300	30.27	120.15	ptz	海康威视	DS-2DE4425IW	online	2026-11-23 22:04:45+00	rtsp://10.1.2.3:554/Streaming/Channels/101	rtsp://10.1.2.3:554/Streaming/Channels/102	http://10.1.2.3/onvif/device_service	tcp	admin	gAAAAABrBLmoek8svMe-_oC7aPZljnrHVP3_bpT4T3nITa5Jzp5vusKjfz0hCYAjYB-67RuFGeW0GspTCRUUQB8oEcfj1NkoxpVTPjuozbU6nlCr9hXqmVw=	["g60", "\\u6865\\u5934"]	t	\N	\N	2026-11-23 22:09:44.747862+00	2026-11-23 22:09:44.747862+00
\.


--
-- Data for Name: meta; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.meta (key, value) FROM stdin;
schema_version	1
credential_canary	gAAAAABrBLmoT9Md3EpMtFcbtt_2QKtRQB7U9lsMaQd-4Vx0-zV4cfQ15ycGQENDJzl0He0TNBre2xYShBcfTr3fCNKruVxcE1A5PN8_wm_Ikabg2HKt7JA=
\.


--
-- Data for Name: tokens; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.tokens (id, user_id, digest, name, kind, created_at, expires_at, revoked_at, last_used_at) FROM stdin;
1	1	e3d8dd3efc31566b7ead285d7f53fd75298346ebf724c96727206639a7941dc6	ops console	api	2026-11-21 22:09:45+00	\N	\N	2026-11-23 19:09:45+00
2	2	82e7b2f4dbf2ff01d333b0af388e4f540b35665271e8a3fd03ef643c632e23c2	laptop	api	2026-11-21 22:09:45+00	2126-10-30 22:09:45+00	\N	2026-11-23 19:09:45+00
3	3	569deed9aa69df09d47be23fcb26fb95a5f502a9bfb1e7d773a4f5a1959a966e	old	api	2026-11-21 22:09:45+00	\N	2026-11-22 22:09:45+00	2026-11-23 19:09:45+00
4	3	5797a2059d9e1d6ef83fb9d91fde3db0287bf90651275c75e6c60121e5d9fd51	\N	login	2026-11-21 22:09:45+00	2026-11-22 22:09:45+00	\N	2026-11-23 19:09:45+00
\.


--
-- Data for Name: units; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.units (id, code, name, level, parent_id, created_at, updated_at) FROM stdin;
1	330000	浙江省交通运输厅	province	\N	2026-11-23 22:09:44.721617+00	2026-11-23 22:09:44.721617+00
2	330100	杭州市交通运输局	city	1	2026-11-23 22:09:44.729826+00	2026-11-23 22:09:44.729826+00
3	330110	余杭区交通运输局	county	2	2026-11-23 22:09:44.73409+00	2026-11-23 22:09:44.73409+00
4	330100.jj	杭州市公安局交通警察支队	department	2	2026-11-23 22:09:44.738379+00	2026-11-23 22:09:44.738379+00
5	330200	宁波市交通运输局	city	1	2026-11-23 22:09:44.742564+00	2026-11-23 22:09:44.742564+00
\.


--
-- Data for Name: users; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.users (id, username, display_name, unit_id, role, password_hash, disabled, service, created_at, updated_at) FROM stdin;
1	admin	省厅管理员	1	administrator	$argon2id$v=19$m=65536,t=3,p=4$Sc5VS9tv1KxFCzQJwlV4eA$U3cPua/K48Jnx33hZlu+EBtIzkbafKxnHGnvW56SS/s	f	f	2026-11-23 22:09:44.78257+00	2026-11-23 22:09:44.78257+00
2	tech-hz	杭州 运维	2	technician	$argon2id$v=19$m=65536,t=3,p=4$VRKihAP7klsBckkbb2agTA$rHR+SsgbulBw1yT9nDJiHH/3CrmHAD1R6utjyw5DsfM	f	f	2026-11-23 22:09:44.920261+00	2026-11-23 22:09:44.920261+00
3	viewer-yh	张三	3	viewer	$argon2id$v=19$m=65536,t=3,p=4$rU7BuhgjUmFuDqpEBWIEbA$Rf8ct35iq2Ck37f/lg14rAW82GmydSRie6TrbrNiw0Q	f	f	2026-11-23 22:09:45.048876+00	2026-11-23 22:09:45.048876+00
4	svc-wall	大屏	1	viewer	\N	f	t	2026-11-23 22:09:45.176506+00	2026-11-23 22:09:45.176506+00
5	former	\N	5	operator	$argon2id$v=19$m=65536,t=3,p=4$kgAdXbdskciE+k5cWDsIZg$wjm8LR6EbdxPM+u3sY4V0sJOEiE6u3YQpHq2+zV0+AU	t	f	2026-11-23 22:09:45.180038+00	2026-11-23 22:09:45.324411+00
\.


--
-- Name: cameras_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.cameras_id_seq', 5, true);


--
-- Name: tokens_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.tokens_id_seq', 4, true);


--
-- Name: units_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.units_id_seq', 5, true);


--
-- Name: users_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.users_id_seq', 5, true);


--
-- Name: cameras cameras_external_id_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.cameras
    ADD CONSTRAINT cameras_external_id_key UNIQUE (external_id);


--
-- Name: cameras cameras_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.cameras
    ADD CONSTRAINT cameras_pkey PRIMARY KEY (id);


--
-- Name: meta meta_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.meta
    ADD CONSTRAINT meta_pkey PRIMARY KEY (key);


--
-- Name: tokens tokens_digest_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tokens
    ADD CONSTRAINT tokens_digest_key UNIQUE (digest);


--
-- Name: tokens tokens_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tokens
    ADD CONSTRAINT tokens_pkey PRIMARY KEY (id);


--
-- Name: units units_code_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.units
    ADD CONSTRAINT units_code_key UNIQUE (code);


--
-- Name: units units_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.units
    ADD CONSTRAINT units_pkey PRIMARY KEY (id);


--
-- Name: users users_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_pkey PRIMARY KEY (id);


--
-- Name: users users_username_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_username_key UNIQUE (username);


--
-- Name: ix_cameras_category; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_cameras_category ON public.cameras USING btree (category);


--
-- Name: ix_cameras_unit; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_cameras_unit ON public.cameras USING btree (unit_id);


--
-- Name: ix_tokens_user; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_tokens_user ON public.tokens USING btree (user_id);


--
-- Name: ix_units_parent; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_units_parent ON public.units USING btree (parent_id);


--
-- Name: cameras cameras_maintenance_unit_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.cameras
    ADD CONSTRAINT cameras_maintenance_unit_id_fkey FOREIGN KEY (maintenance_unit_id) REFERENCES public.units(id) ON DELETE RESTRICT;


--
-- Name: cameras cameras_unit_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.cameras
    ADD CONSTRAINT cameras_unit_id_fkey FOREIGN KEY (unit_id) REFERENCES public.units(id) ON DELETE RESTRICT;


--
-- Name: tokens tokens_user_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tokens
    ADD CONSTRAINT tokens_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;


--
-- Name: units units_parent_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.units
    ADD CONSTRAINT units_parent_id_fkey FOREIGN KEY (parent_id) REFERENCES public.units(id) ON DELETE RESTRICT;


--
-- Name: users users_unit_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_unit_id_fkey FOREIGN KEY (unit_id) REFERENCES public.units(id) ON DELETE RESTRICT;


--
-- PostgreSQL database dump complete
--

\unrestrict qjVQvodyThSnt1IcncC9lZKRIo5z8W0bmgsOHBsBZOuruGiAzGrtZ3Pd7FRM437

