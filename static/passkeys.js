// Passkeys on MiniAuth's pages: hands the server's WebAuthn options (JSON, binary as base64url)
// to navigator.credentials and puts the answer, as JSON, into a plain form that the server
// checks. Nothing else on the pages needs this script; without it they work for passwords and
// codes. Forms it drives:
//   form[data-passkey="register"]     adds a passkey (options from data-start, cookie + CSRF)
//   form[data-passkey="sign-in"]      signs in with a passkey (options from data-start), and
//                                     offers passkeys in the username field's autofill
//   form[data-passkey="second-step"]  the second step of a sign-in (options in data-options)
"use strict";

(function () {
  if (!window.PublicKeyCredential || !navigator.credentials) {
    return;
  }

  // base64url <-> bytes, for browsers without parse*OptionsFromJSON() and toJSON().
  function bytes(text) {
    var base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    var binary = atob(base64 + "===".slice((base64.length + 3) % 4));
    return Uint8Array.from(binary, function (c) { return c.charCodeAt(0); }).buffer;
  }
  function text(buffer) {
    var binary = String.fromCharCode.apply(null, new Uint8Array(buffer));
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function withIds(list) {
    return (list || []).map(function (c) { return Object.assign({}, c, { id: bytes(c.id) }); });
  }
  function creationOptions(json) {
    if (PublicKeyCredential.parseCreationOptionsFromJSON) {
      return PublicKeyCredential.parseCreationOptionsFromJSON(json);
    }
    return Object.assign({}, json, {
      challenge: bytes(json.challenge),
      user: Object.assign({}, json.user, { id: bytes(json.user.id) }),
      excludeCredentials: withIds(json.excludeCredentials),
    });
  }
  function requestOptions(json) {
    if (PublicKeyCredential.parseRequestOptionsFromJSON) {
      return PublicKeyCredential.parseRequestOptionsFromJSON(json);
    }
    return Object.assign({}, json, {
      challenge: bytes(json.challenge),
      allowCredentials: withIds(json.allowCredentials),
    });
  }
  function answer(credential) {
    if (typeof credential.toJSON === "function") {
      return credential.toJSON();
    }
    var r = credential.response;
    var response = { clientDataJSON: text(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = text(r.attestationObject);
      response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      response.authenticatorData = text(r.authenticatorData);
      response.signature = text(r.signature);
      response.userHandle = r.userHandle ? text(r.userHandle) : null;
    }
    return {
      id: credential.id,
      rawId: text(credential.rawId),
      type: credential.type,
      response: response,
      clientExtensionResults: credential.getClientExtensionResults(),
    };
  }

  function field(form, name) {
    return form.querySelector('[name="' + name + '"]');
  }
  function say(form, message) {
    var box = form.querySelector("[data-passkey-error]");
    if (box) {
      box.textContent = message;
      box.hidden = !message;
    }
  }
  // Why the browser gave nothing, as people read it.
  function failure(error) {
    if (error && error.name === "NotAllowedError") {
      return "No passkey was used: the request was cancelled or timed out.";
    }
    if (error && error.name === "InvalidStateError") {
      return "This device has a passkey for your account already.";
    }
    return "The passkey did not work: " + (error && error.message ? error.message : error);
  }
  // POSTs to one of MiniAuth's start addresses: the ceremony and its options.
  function start(form) {
    var csrf = field(form, "csrf_token");
    return fetch(form.dataset.start, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRF-Token": csrf ? csrf.value : "" },
    }).then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) {
          throw new Error(body.detail || response.statusText);
        }
        return body;
      });
    });
  }
  function send(form, ceremony, credential) {
    field(form, "ceremony").value = ceremony;
    field(form, "credential").value = JSON.stringify(answer(credential));
    form.submit();
  }

  function register(form) {
    form.addEventListener("submit", function (event) {
      if (field(form, "credential").value) {
        return;
      }
      event.preventDefault();
      if (!form.reportValidity()) {
        return;
      }
      say(form, "");
      start(form)
        .then(function (challenge) {
          var options = { publicKey: creationOptions(challenge.publicKey) };
          return navigator.credentials.create(options).then(function (credential) {
            send(form, challenge.ceremony, credential);
          });
        })
        .catch(function (error) { say(form, failure(error)); });
    });
  }

  // Only one request may be pending: the autofill's is aborted before the button's.
  var autofill = null;

  function signIn(form) {
    var button = form.querySelector("button");
    button.addEventListener("click", function (event) {
      event.preventDefault();
      if (autofill) {
        autofill.abort();
        autofill = null;
      }
      say(form, "");
      start(form)
        .then(function (challenge) {
          var options = { publicKey: requestOptions(challenge.publicKey) };
          return navigator.credentials.get(options).then(function (credential) {
            send(form, challenge.ceremony, credential);
          });
        })
        .catch(function (error) { say(form, failure(error)); });
    });
    if (!PublicKeyCredential.isConditionalMediationAvailable) {
      return;
    }
    PublicKeyCredential.isConditionalMediationAvailable().then(function (available) {
      if (!available) {
        return;
      }
      autofill = new AbortController();
      var signal = autofill.signal;
      start(form)
        .then(function (challenge) {
          var options = { publicKey: requestOptions(challenge.publicKey), mediation: "conditional", signal: signal };
          return navigator.credentials.get(options).then(function (credential) {
            if (credential) {
              send(form, challenge.ceremony, credential);
            }
          });
        })
        .catch(function () { /* aborted, or no passkey chosen: the form stays as it is */ });
    });
  }

  function secondStep(form) {
    var options = JSON.parse(form.dataset.options);
    form.querySelector("button").addEventListener("click", function (event) {
      event.preventDefault();
      say(form, "");
      navigator.credentials
        .get({ publicKey: requestOptions(options) })
        .then(function (credential) { send(form, field(form, "ceremony").value, credential); })
        .catch(function (error) { say(form, failure(error)); });
    });
  }

  var drivers = { "register": register, "sign-in": signIn, "second-step": secondStep };
  document.querySelectorAll("[data-passkey]").forEach(function (form) {
    var drive = drivers[form.dataset.passkey];
    if (drive) {
      drive(form);
      form.hidden = false;
      document.querySelectorAll('[data-passkey-hint="' + form.id + '"]').forEach(function (hint) {
        hint.hidden = true;
      });
    }
  });
})();
